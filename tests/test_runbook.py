"""The migrate runbook runs unattended under papermill against real servers."""

from __future__ import annotations

from pathlib import Path

import papermill
import yaml
from helpers import exact_rows

from omsbench.endpoints.connection import connect
from omsbench.engine import sampledb
from omsbench.engine.servers import SeekdbServer

NOTEBOOK = __file__.rsplit("/tests/", 1)[0] + "/notebooks/migrate.ipynb"


def test_migrate_runbook(tmp_path, source, src, unique):
    db = unique("runbook")
    sampledb.create(src, rows=1500, database=db)
    server = SeekdbServer(tmp_path / "seekdb")  # a kernel is another process: give it a TCP target
    server.start()
    try:
        spec = tmp_path / "runbook.yaml"
        spec.write_text(
            yaml.safe_dump(
                {
                    "name": "runbook",
                    "source": source.model_dump(exclude_none=True),
                    "target": server.endpoint().model_dump(exclude_none=True),
                    "objects": {"include": [f"{db}.*"]},
                }
            )
        )
        out = tmp_path / "out.ipynb"
        papermill.execute_notebook(
            NOTEBOOK, str(out), parameters={"spec": str(spec), "workspace": str(tmp_path / "ws")}, progress_bar=False
        )
        with connect(server.endpoint().dsn()) as dst:
            assert exact_rows(src, db, "type_zoo") == exact_rows(dst, db, "type_zoo")
            assert exact_rows(src, db, "order_items") == exact_rows(dst, db, "order_items")
        text = out.read_text()
        assert "equal" in text and "binlog start" in text
        password = Path(source.password_file).read_text().strip()
        assert password not in text
    finally:
        server.stop()
