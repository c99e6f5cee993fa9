from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from celery.signals import task_failure, task_success

        # imported here: the records module imports the models, which need the app registry ready
        from controlplane import task_records

        task_failure.connect(task_records.on_task_failure, weak=False, dispatch_uid="mqcloud-task-failure")
        task_success.connect(task_records.on_task_success, weak=False, dispatch_uid="mqcloud-task-success")
