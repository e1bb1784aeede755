"""The REST API under /api/v1 (routes.py), its declarations (models.py) and generated OpenAPI
document (openapi.py). It calls analytics.services only: never the Dash pages."""
