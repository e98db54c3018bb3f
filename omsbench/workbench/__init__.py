"""What a person sees: reports now; the control panel, charts and runbooks build on the same engine."""
