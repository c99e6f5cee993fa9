from django.urls import path

from projects.console import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login", views.login_view, name="login"),
    path("invitations/<str:token>", views.invitation_accept, name="invitation-accept"),
]
