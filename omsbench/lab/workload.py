"""A random transactional workload on the sample shop database: what a busy application does.

Multi-statement transactions (a few rolled back), primary-key changes, NULLs and every type of
``type_zoo``, large rows, deletes that cascade to child rows, and duplicate rows in the keyless
``audit_log``; and, on request, a batch job's large transaction. Tests, the sync benchmark and
chaos runs replay it while a sync runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pymysql

from omsbench.endpoints.connection import Session
from omsbench.lab.sampledb import insert_type_zoo, type_zoo_rows

RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock


@dataclass
class Workload:
    session: Session
    database: str
    seed: int = 1
    spatial: bool = True
    """False leaves ``type_zoo`` (it has a geometry column) alone: for sides whose capture cannot take it."""
    rng: random.Random = field(init=False)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.session.execute(f"USE `{self.database}`")
        self.next_zoo = max(int(self.session.scalar("SELECT COALESCE(MAX(id), 0) FROM type_zoo")), 10**6) + 1
        self.orders = int(self.session.scalar("SELECT COALESCE(MAX(id), 1) FROM orders"))
        self.customers = int(self.session.scalar("SELECT COALESCE(MAX(id), 1) FROM customers"))

    def run(self, transactions: int) -> dict[str, int]:
        """Commit ``transactions`` transactions (about one in twenty is rolled back instead)."""
        operations: list[Callable[[], None]] = [self.new_order, self.pay, self.cancel, self.customer, self.audit]
        if self.spatial:
            operations += [self.zoo_insert, self.zoo_update, self.zoo_rekey, self.zoo_delete]
        conn = self.session.conn
        for _ in range(transactions):
            conn.begin()
            try:
                for _ in range(self.rng.randint(1, 4)):
                    operation = self.rng.choice(operations)
                    operation()
                    self.counts[operation.__name__] = self.counts.get(operation.__name__, 0) + 1
            except pymysql.err.OperationalError as err:
                if err.args[0] not in RETRYABLE:
                    raise
                conn.rollback()  # what an application does with a deadlock victim
                self.counts["deadlocks"] = self.counts.get("deadlocks", 0) + 1
                continue
            if self.rng.random() < 0.05:
                conn.rollback()
            else:
                conn.commit()
        return self.counts

    def batch(self, changes: int) -> bool:
        """A batch job: one transaction that rewrites every order item an odd number of times (each
        ends one higher), ``changes`` row changes at least: a large transaction for a sync to carry.
        False when it was a deadlock victim (rolled back)."""
        items = max(1, int(self.session.scalar("SELECT COUNT(*) FROM order_items")))
        passes = -(-changes // items) | 1
        conn = self.session.conn
        conn.begin()
        try:
            for n in range(passes):
                self.session.execute(f"UPDATE order_items SET qty = qty {'-' if n % 2 else '+'} 1")
        except pymysql.err.OperationalError as err:
            if err.args[0] not in RETRYABLE:
                raise
            conn.rollback()
            self.counts["deadlocks"] = self.counts.get("deadlocks", 0) + 1
            return False
        conn.commit()
        return True

    def _id(self, upper: int) -> int:
        return self.rng.randint(1, max(1, upper))

    def new_order(self) -> None:
        self.session.execute(
            "INSERT INTO orders (customer_id, status, note, total) VALUES (%s, 'new', %s, %s)",
            (self._id(self.customers), self.rng.choice([None, "gift ✓"]), Decimal(self.rng.randrange(10**6)) / 100),
        )
        order = int(self.session.scalar("SELECT LAST_INSERT_ID()"))
        self.orders = max(self.orders, order)
        sku = self.session.scalar("SELECT sku FROM products ORDER BY sku LIMIT 1")
        for line in range(1, self.rng.randint(1, 3) + 1):
            self.session.execute(
                "INSERT INTO order_items (order_id, line_no, sku, qty, unit_price) VALUES (%s, %s, %s, %s, %s)",
                (order, line, sku, self.rng.randint(1, 9), Decimal(self.rng.randrange(100, 10**5)) / 100),
            )

    def pay(self) -> None:
        self.session.execute(
            "UPDATE orders SET status = 'paid', total = total + 1.25 WHERE id = %s", (self._id(self.orders),)
        )

    def cancel(self) -> None:
        self.session.execute("DELETE FROM orders WHERE id = %s", (self._id(self.orders),))  # items cascade

    def customer(self) -> None:
        self.session.execute(
            "UPDATE customers SET balance = balance - 0.5, name = %s WHERE id = %s",
            (self.rng.choice(["Zoë 😀", "李雷", "O'Brien"]), self._id(self.customers)),
        )

    def zoo_insert(self) -> None:
        row = list(type_zoo_rows(self.rng, 4)[-1])
        row[0], self.next_zoo = self.next_zoo, self.next_zoo + 1
        for i in range(1, len(row) - 1):
            if self.rng.random() < 0.15:
                row[i] = None
        if self.rng.random() < 0.3:
            row[15] = f"-{self.rng.randrange(838)}:{self.rng.randrange(60):02d}:07.{self.rng.randrange(1000):03d}"
        if self.rng.random() < 0.05:
            row[24] = self.rng.randbytes(60_000)  # a large row
        insert_type_zoo(self.session, [tuple(row)])

    def zoo_update(self) -> None:
        self.session.execute(
            "UPDATE type_zoo SET c_varchar = %s, c_decimal = NULL, c_set = %s, c_datetime = %s, c_uint = %s"
            " WHERE id = %s",
            (
                self.rng.choice([None, "neu 😀", ""]),
                self.rng.choice(["", "a,c", "b"]),
                self.rng.choice([None, "2024-02-29 12:00:00.123456"]),
                self.rng.randrange(2**32),
                self._zoo_id(),
            ),
        )

    def zoo_rekey(self) -> None:
        new = self.next_zoo
        self.next_zoo += 1
        self.session.execute("UPDATE type_zoo SET id = %s WHERE id = %s", (new, self._zoo_id()))

    def zoo_delete(self) -> None:
        self.session.execute("DELETE FROM type_zoo WHERE id = %s", (self._zoo_id(),))

    def _zoo_id(self) -> int:
        return self.rng.choice([self.rng.randint(1, 40), self.rng.randint(10**6, self.next_zoo)])

    def audit(self) -> None:
        at = f"2024-01-01 00:00:{self.rng.randrange(3):02d}"
        choice = self.rng.random()
        if choice < 0.5:
            self.session.execute(
                "INSERT INTO audit_log VALUES (%s, 'app', 'pay', NULL), (%s, 'app', 'pay', NULL)", (at, at)
            )
        elif choice < 0.75:
            self.session.execute("DELETE FROM audit_log WHERE at = %s AND actor = 'app' LIMIT 1", (at,))
        else:
            self.session.execute(
                "UPDATE audit_log SET action = 'refund', payload = %s WHERE at = %s LIMIT 1",
                (self.rng.randbytes(4), at),
            )
