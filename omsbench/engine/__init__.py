"""The migration itself: spec, state, precheck, schema, full load. No user interface here."""
