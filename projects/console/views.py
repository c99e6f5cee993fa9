"""Placeholder console; the full console is built on the same tenancy layer."""

from django.http import HttpResponse


def home(request):
    return HttpResponse("mqcloud console")


def login_view(request):
    return HttpResponse("login")


def invitation_accept(request, token: str):
    return HttpResponse("accept")
