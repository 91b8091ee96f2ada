"""The HTTP API: ``create_app(runtime)`` and one blueprint per resource."""
