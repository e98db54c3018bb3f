"""The project spec: one YAML file per migration project, validated on load.

Validation errors name the field and the fix; nothing is connected to or written before the
spec is valid.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from omsbench.actions import named
from omsbench.endpoints.connection import Endpoint, mask
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.queue import QueueEndpoint
from omsbench.endpoints.rocketmq import RocketMQEndpoint
from omsbench.exceptions import SpecError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Renames(_Strict):
    """Target names: ``databases: {src: dst}``, ``tables: {db.t: new}``, ``columns: {db.t.c: new}``."""

    databases: dict[str, str] = {}
    tables: dict[str, str] = {}
    columns: dict[str, str] = {}


class Objects(_Strict):
    """Which objects move. Patterns are ``db.table`` with ``*``/``?`` wildcards; backticks quote dots."""

    include: list[str] = ["*.*"]
    exclude: list[str] = []
    rename: Renames = Renames()
    filters: dict[str, str] = {}
    """Row filter per table, ``db.table: condition`` (a WHERE condition on that table only)."""
    collations: dict[str, str] = {}
    """Source collation -> target collation, where the default choice would not do: a key that
    must stay case- or accent-sensitive on a target that lacks the source's collation."""
    accept_missing: list[str] = []
    """Objects the target may lack without failing the load, as the load names them:
    ``index shop.address.idx_location``, ``foreign key shop.orders.fk_customer``, ``check shop.t.chk``."""


class Options(_Strict):
    parallelism: int = Field(4, ge=1, le=64)
    chunk_size: int = Field(20_000, ge=100, le=10_000_000)
    rows_per_second: int = Field(0, ge=0, description="throttle for the full load; 0 = unlimited")
    batch_bytes: int = Field(512 << 10, ge=64 << 10, le=12 << 20, description="bytes per INSERT (seekdb packet: 16 MB)")
    on_existing_rows: Literal["refuse", "truncate", "append"] = "refuse"
    ddl_timeout_s: int = Field(
        3600, ge=1, le=7 * 86400, description="longest a post-load index or constraint may run on the target"
    )
    index_after_rows: int | None = Field(
        1_000_000,
        ge=0,
        description="tables the source estimates at this many rows or more get their plain indexes after the full"
        " load, built in parallel (faster on seekdb from about a million rows, measured); None: always with the table",
    )
    executor: Literal["threads", "processes"] = "threads"
    """Threads by default: the copy loop only moves bytes, so the GIL costs less than starting processes."""
    group_rows: int = Field(20_000, ge=1, le=1_000_000, description="sync: most rows merged into one target commit")
    heartbeat_ms: int = Field(200, ge=20, le=60_000, description="sync: how often the source heartbeat is written")
    apply_workers: int = Field(
        1,
        ge=1,
        le=16,
        description="sync: target sessions applying each group at once, split by key; above 1 a reader of the"
        " target may briefly see part of a group",
    )


class Switchover(_Strict):
    """How the switchover treats this project, so the CLI, the panel and the runbook agree."""

    without: list[str] = []
    """Source tables (db.table) left out of reverse sync, such as tables the capture cannot take."""
    suspend_source_triggers: bool = False
    """Drop MySQL's triggers on the synced tables until switch-back (their definitions are kept)."""
    writes_stopped: bool = False
    """The application's writes are stopped by the user: omsbench does not set MySQL read-only."""
    narrow_columns: Literal["widen", "guard", "pause"] = "widen"
    """Text columns MySQL keeps narrower than OceanBase's utf8mb4 (utf8mb3, latin1, ...) at
    switchover: ``widen`` them on MySQL (CONVERT TO utf8mb4, recorded), ``guard`` them on
    OceanBase (a CHECK that refuses the application a 4-byte character: utf8mb3 columns only),
    or ``pause`` the reverse sync on such a value, showing it. Widen loses nothing and keeps both
    the application and the fallback running."""
    definers: dict[str, str] = {}
    """DEFINER of the application's triggers and routines (``user@host``) -> the target's user that
    owns them there; one the target lacks and that is not mapped is replaced by omsbench's user."""
    target_routines: Literal["keep", "drop"] = "keep"
    """At switch-back, the procedures and functions the switchover created on OceanBase: kept
    (harmless, and ready for the next switchover) or dropped. Its triggers are always dropped."""
    compare_every_s: float = Field(5.0, ge=0.5, le=3600)
    """Tables triggers cannot capture on OceanBase (a spatial column on seekdb) are carried back to
    MySQL by comparison instead, this often (see ``engine.compared``): their lag is up to this plus
    one comparison."""
    reverse_capture: Literal["auto", "triggers", "binlog"] = "auto"
    """How reverse sync captures the target's changes: triggers (work everywhere), the target's
    own binlog (an OceanBase binlog service, or a MySQL target), or auto: the binlog where the
    precheck finds it usable, else triggers."""


_TAGS = {"database": Endpoint, "kafka": KafkaEndpoint, "rocketmq": RocketMQEndpoint}


def _kind(value: object) -> str:
    """A database is reached by ``url``, Kafka by ``kafka``, RocketMQ by ``rocketmq``: the key tells the model."""
    for tag, model in _TAGS.items():
        if isinstance(value, model) or (isinstance(value, dict) and tag in value):
            return tag
    return "database"


AnyEndpoint = Annotated[
    Annotated[Endpoint, Tag("database")]
    | Annotated[KafkaEndpoint, Tag("kafka")]
    | Annotated[RocketMQEndpoint, Tag("rocketmq")],
    Discriminator(_kind),
]


def _untagged(loc: tuple) -> tuple:
    """Where a problem is, without the union tag pydantic puts after ``source``/``target``."""
    if len(loc) > 1 and loc[0] in ("source", "target") and loc[1] in _TAGS:
        return (loc[0], *loc[2:])
    return loc


class ProjectSpec(_Strict):
    name: str
    source: AnyEndpoint
    target: AnyEndpoint
    objects: Objects = Objects()
    options: Options = Options()
    switchover: Switchover = Switchover()

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError("use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit")
        return name

    @model_validator(mode="after")
    def _check_queue(self) -> ProjectSpec:
        if isinstance(self.source, QueueEndpoint) and isinstance(self.target, QueueEndpoint):
            raise ValueError("source and target are both message queues; one of them must be a database")
        if isinstance(self.source, RocketMQEndpoint):
            raise ValueError("RocketMQ can be a target only; a Kafka source can be applied to a database")
        if self.queue and self.options.apply_workers > 1:
            raise ValueError("options.apply_workers applies to a sync between two databases; set it to 1 with a queue")
        renames = self.objects.rename
        if self.queue and (renames.databases or renames.tables or renames.columns):
            raise ValueError("objects.rename does not apply with Kafka: messages carry the database's own names")
        return self

    @property
    def queue(self) -> QueueEndpoint | None:
        """The message-queue side of a project that publishes to or consumes from one."""
        for end in (self.target, self.source):
            if isinstance(end, QueueEndpoint):
                return end
        return None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def load(path: str | Path) -> ProjectSpec:
    """Read and validate a spec file; every problem is reported at once, by field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SpecError(
            f"cannot read the project spec {path}: {err.strerror}",
            fix=f"give the path of a spec file ({named('init')} writes one)",
        ) from err
    except yaml.YAMLError as err:
        raise SpecError(f"{path} is not valid YAML: {err}", fix="fix the YAML syntax at the line shown") from err
    return parse(data, origin=str(path))


def parse(data: object, origin: str = "spec") -> ProjectSpec:
    if not isinstance(data, dict):
        raise SpecError(
            f"{origin}: the spec must be a mapping with keys name, source, target",
            fix="see the README for an example spec",
        )
    try:
        return ProjectSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(
            f"{origin} is not a valid project spec:\n" + _describe(err), fix="correct the fields listed above"
        ) from err


def _describe(err: ValidationError) -> str:
    lines = []
    for problem in err.errors():
        where = ".".join(str(p) for p in _untagged(problem["loc"])) or "(top level)"
        if problem["type"] == "extra_forbidden":
            parent = _model_at(problem["loc"][:-1])
            allowed = ", ".join(parent.model_fields) if parent else "see the README"
            lines.append(f"  - {where}: unknown key; allowed keys here: {allowed}")
        elif problem["type"] == "missing":
            lines.append(f"  - {where}: required field is missing")
        else:
            got = problem.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {mask(repr(got))})"
            lines.append(f"  - {where}: {problem['msg']}{shown}")
    return "\n".join(lines)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = ProjectSpec
    if len(loc) > 1 and loc[0] in ("source", "target") and loc[1] in _TAGS:
        model, loc = _TAGS[loc[1]], loc[2:]
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def split_name(text: str) -> list[str]:
    """Split ``db.table`` (or ``db.table.column``) on dots outside backticks."""
    parts, current, quoted, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if ch == "`":
            if quoted and text[i + 1 : i + 2] == "`":
                current += "`"
                i += 2
                continue
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    parts.append(current)
    return parts
