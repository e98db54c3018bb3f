"""Endpoints talk to one kind of server: connect, read its catalog, read and write rows."""
