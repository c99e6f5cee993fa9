from django.apps import AppConfig


class K8sConfig(AppConfig):
    name = "k8s"
