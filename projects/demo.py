"""Logins seeded for the embedded default (`make run`). Never used outside it (seed_demo refuses)."""

DEMO_EMAIL = "demo@mqcloud.localhost"
OPS_EMAIL = "ops@mqcloud.localhost"
DEMO_PASSWORD = "mqcloud-demo-2026"
