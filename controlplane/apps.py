from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from celery.signals import (
            before_task_publish,
            task_failure,
            task_postrun,
            task_prerun,
            task_retry,
            task_success,
            worker_init,
        )

        # imported here: the records module imports the models, which need the app registry ready
        from controlplane import request_context, task_records, telemetry

        task_failure.connect(task_records.on_task_failure, weak=False, dispatch_uid="mqcloud-task-failure")
        task_success.connect(task_records.on_task_success, weak=False, dispatch_uid="mqcloud-task-success")
        # The request id into every message published, and the task's log fields and metrics around each run.
        before_task_publish.connect(request_context.on_before_task_publish, weak=False,
                                    dispatch_uid="mqcloud-request-id-publish")
        task_prerun.connect(request_context.on_task_prerun, weak=False, dispatch_uid="mqcloud-context-prerun")
        task_postrun.connect(request_context.on_task_postrun, weak=False, dispatch_uid="mqcloud-context-postrun")
        task_prerun.connect(telemetry.on_task_prerun, weak=False, dispatch_uid="mqcloud-metrics-prerun")
        task_postrun.connect(telemetry.on_task_postrun, weak=False, dispatch_uid="mqcloud-metrics-postrun")
        task_failure.connect(telemetry.on_task_failure, weak=False, dispatch_uid="mqcloud-metrics-failure")
        task_retry.connect(telemetry.on_task_retry, weak=False, dispatch_uid="mqcloud-metrics-retry")
        worker_init.connect(telemetry.on_worker_init, weak=False, dispatch_uid="mqcloud-metrics-worker")
