"""OpenAPI descriptions of our authentication schemes (loaded in ProjectsConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "projects.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mqc_<prefix>_<secret>",
            "description": "An API key created in the console or with POST /api/v1/api-keys.",
        }


class ConsoleSessionScheme(OpenApiAuthenticationExtension):
    target_class = "projects.authentication.ConsoleSessionAuthentication"
    name = "consoleSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "The console's session cookie; unsafe methods also need the X-CSRFToken header."}
