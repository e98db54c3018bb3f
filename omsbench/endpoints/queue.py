"""What every message-queue endpoint shares: the message format and how topics are named."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

FORMAT = Literal["canal", "debezium", "debezium-schema", "json"]


class QueueEndpoint(BaseModel):
    """``topic`` and ``ddl_topic`` are patterns over ``{prefix}`` (the project name, Debezium's
    ``topic.prefix``), ``{database}`` and ``{table}``; a pattern without placeholders sends
    everything to one topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: FORMAT = "canal"
    topic: str = "{prefix}.{database}.{table}"
    ddl_topic: str = "{prefix}"

    @property
    def url(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.url

    def topic_for(self, prefix: str, database: str | None, table: str | None) -> str:
        return self.topic.format(prefix=prefix, database=database or "", table=table or "")

    def ddl_topic_for(self, prefix: str, database: str | None, table: str | None) -> str:
        return self.ddl_topic.format(prefix=prefix, database=database or "", table=table or "")
