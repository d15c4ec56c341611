"""Code shared by the token service and the sidecar: generated stubs, claim and scope rules."""

__all__: list[str] = []
