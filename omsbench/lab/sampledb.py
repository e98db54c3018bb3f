"""A realistic sample database for the demo and the tests: a small shop.

Related tables with foreign keys, a composite key, a string key, a table without any key, a
latin1 table (seekdb has only utf8mb4), every type the full load must carry unchanged, a view
and a trigger. Rows come from a seeded generator, so a given ``rows`` always builds the
same database.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from decimal import Decimal

from omsbench.endpoints.connection import Session

DATABASE = "shop"

DDL = [
    """CREATE TABLE customers (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        email VARCHAR(191) NOT NULL,
        name VARCHAR(100) NOT NULL,
        country CHAR(2) NOT NULL DEFAULT 'DE',
        created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        balance DECIMAL(12,2) NOT NULL DEFAULT 0.00,
        vip TINYINT(1) NOT NULL DEFAULT 0,
        UNIQUE KEY uk_email (email),
        KEY idx_country (country)
    ) DEFAULT CHARSET=utf8mb4 COMMENT='people who buy'""",
    """CREATE TABLE products (
        sku VARCHAR(32) NOT NULL PRIMARY KEY,
        title VARCHAR(200) NOT NULL,
        price DECIMAL(10,2) NOT NULL,
        weight FLOAT NULL,
        tags SET('new','sale','eco') NOT NULL DEFAULT '',
        status ENUM('active','retired') NOT NULL DEFAULT 'active',
        attrs JSON NULL,
        picture BLOB NULL
    ) DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE orders (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        customer_id INT UNSIGNED NOT NULL,
        placed_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        status ENUM('new','paid','shipped','cancelled') NOT NULL DEFAULT 'new',
        note TEXT NULL,
        total DECIMAL(14,2) NOT NULL DEFAULT 0,
        KEY idx_customer (customer_id),
        CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
    ) DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE order_items (
        order_id BIGINT NOT NULL,
        line_no SMALLINT UNSIGNED NOT NULL,
        sku VARCHAR(32) NOT NULL,
        qty SMALLINT UNSIGNED NOT NULL,
        unit_price DECIMAL(10,2) NOT NULL,
        line_total DECIMAL(14,2) AS (qty * unit_price) STORED,
        PRIMARY KEY (order_id, line_no),
        CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE,
        CONSTRAINT fk_items_product FOREIGN KEY (sku) REFERENCES products (sku)
    ) DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE audit_log (
        at DATETIME NOT NULL,
        actor VARCHAR(64) NOT NULL,
        action VARCHAR(32) NOT NULL,
        payload VARBINARY(64) NULL
    ) DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE legacy_notes (
        id INT NOT NULL PRIMARY KEY,
        body VARCHAR(255) NOT NULL
    ) DEFAULT CHARSET=latin1""",
    """CREATE TABLE type_zoo (
        id INT NOT NULL PRIMARY KEY,
        c_tinyint TINYINT, c_utinyint TINYINT UNSIGNED, c_smallint SMALLINT, c_usmallint SMALLINT UNSIGNED,
        c_mediumint MEDIUMINT, c_int INT, c_uint INT UNSIGNED, c_bigint BIGINT, c_ubigint BIGINT UNSIGNED,
        c_bit BIT(10), c_decimal DECIMAL(30,10), c_float FLOAT, c_double DOUBLE,
        c_date DATE, c_time TIME(3), c_datetime DATETIME(6), c_timestamp TIMESTAMP(6) NULL, c_year YEAR,
        c_char CHAR(10), c_varchar VARCHAR(100), c_text TEXT, c_binary BINARY(4), c_varbinary VARBINARY(32),
        c_blob BLOB, c_json JSON, c_enum ENUM('x','y','z'), c_set SET('a','b','c'), c_geometry GEOMETRY
    ) DEFAULT CHARSET=utf8mb4""",
    """CREATE VIEW customer_totals AS
        SELECT c.id AS customer_id, c.email, COUNT(o.id) AS orders, COALESCE(SUM(o.total), 0) AS spent
        FROM customers c LEFT JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.email""",
    """CREATE TRIGGER orders_note BEFORE INSERT ON orders FOR EACH ROW
        SET NEW.note = IFNULL(NEW.note, '')""",
]

_NAMES = ["Anna", "Jürgen", "Zoë", "Łukasz", "Søren", "María", "Çelik", "李雷", "Olúwa", "Dmitrí"]
_EMOJI = ["", " 😀", " 🚀", " ✓", " 𝄞"]
_START = datetime(2020, 1, 1)


def create(session: Session, rows: int = 100_000, seed: int = 7, database: str = DATABASE) -> dict[str, int]:
    """(Re)create the sample database with ``rows`` rows in all (more only below 1,000); returns rows per table."""
    rng = random.Random(seed)
    session.execute(f"DROP DATABASE IF EXISTS `{database}`")
    session.execute(f"CREATE DATABASE `{database}` DEFAULT CHARACTER SET utf8mb4")
    session.execute(f"USE `{database}`")
    for statement in DDL:
        session.execute(statement)
    n_customers = max(10, rows // 10)
    n_products = max(10, rows // 50)
    n_orders = max(10, rows // 4)
    counts = {
        "customers": _insert(session, "customers", _customers(rng, n_customers)),
        "products": _insert(session, "products", _products(rng, n_products)),
        "orders": _insert(session, "orders", _orders(rng, n_orders, n_customers)),
    }
    counts["order_items"] = _insert(
        session,
        "order_items",
        _items(rng, n_orders, n_products, rows // 2),
        columns="(order_id, line_no, sku, qty, unit_price)",
    )
    counts["legacy_notes"] = _insert(
        session, "legacy_notes", [(i, f"Notiz {i}: Größe ÄÖÜ café") for i in range(1, max(10, rows // 100) + 1)]
    )
    counts["type_zoo"] = insert_type_zoo(session, type_zoo_rows(rng, max(20, rows // 100)))
    # The keyless log takes what the other tables leave, so the sample holds the rows asked for.
    counts["audit_log"] = _insert(session, "audit_log", _audit(rng, max(10, rows - sum(counts.values()))))
    return counts


def _insert(
    session: Session, table: str, rows: list[tuple], batch: int = 2000, marks: str | None = None, columns: str = ""
) -> int:
    if not rows:
        return 0
    marks = marks or "(" + ", ".join(["%s"] * len(rows[0])) + ")"
    with session.conn.cursor() as cur:
        for i in range(0, len(rows), batch):
            cur.executemany(f"INSERT INTO `{table}` {columns} VALUES {marks}", rows[i : i + batch])
    return len(rows)


def _customers(rng: random.Random, n: int) -> list[tuple]:
    return [
        (
            i,
            f"user{i}@example.com",
            rng.choice(_NAMES) + rng.choice(_EMOJI),
            rng.choice(["DE", "FR", "CN", "US"]),
            _START + timedelta(seconds=rng.randrange(10**8), microseconds=rng.randrange(10**6)),
            Decimal(rng.randrange(-(10**6), 10**8)) / 100,
            rng.random() < 0.1,
        )
        for i in range(1, n + 1)
    ]


def _products(rng: random.Random, n: int) -> list[tuple]:
    return [
        (
            f"SKU-{i:06d}",
            f"Product {i}{rng.choice(_EMOJI)}",
            Decimal(rng.randrange(100, 10**6)) / 100,
            rng.choice([None, rng.uniform(0.01, 100.0)]),
            rng.choice(["", "new", "sale,eco", "new,sale,eco"]),
            rng.choice(["active", "retired"]),
            json.dumps({"color": rng.choice(["red", "blå"]), "size": i % 7}),
            rng.choice([None, rng.randbytes(rng.randrange(0, 64))]),
        )
        for i in range(1, n + 1)
    ]


def _orders(rng: random.Random, n: int, customers: int) -> list[tuple]:
    return [
        (
            i,
            rng.randrange(1, customers + 1),
            _START + timedelta(seconds=rng.randrange(10**8)),
            rng.choice(["new", "paid", "shipped", "cancelled"]),
            rng.choice([None, "gift ✓", "leave at door"]),
            Decimal(rng.randrange(0, 10**7)) / 100,
        )
        for i in range(1, n + 1)
    ]


def _items(rng: random.Random, orders: int, products: int, n: int) -> list[tuple]:
    rows, order = [], 1
    while len(rows) < n and order <= orders:
        for line in range(1, rng.randrange(1, 5) + 1):
            rows.append(
                (
                    order,
                    line,
                    f"SKU-{rng.randrange(1, products + 1):06d}",
                    rng.randrange(1, 20),
                    Decimal(rng.randrange(100, 10**5)) / 100,
                )
            )
        order += 1
    return rows[:n]


def _audit(rng: random.Random, n: int) -> list[tuple]:
    # No key and deliberate duplicates: the copy must carry each of them.
    base = [
        (
            _START + timedelta(seconds=rng.randrange(10**6)),
            rng.choice(_NAMES),
            rng.choice(["login", "pay"]),
            rng.choice([None, rng.randbytes(8)]),
        )
        for _ in range(n - n // 10)
    ]
    return base + base[: n // 10]


def type_zoo_rows(rng: random.Random, n: int) -> list[tuple]:
    """Edge values first (extremes, zero dates, empty strings, 4-byte characters, NULLs), then random rows."""
    edge = [
        (
            1,
            -128,
            255,
            -32768,
            65535,
            -8388608,
            -2147483648,
            4294967295,
            -9223372036854775808,
            18446744073709551615,
            1023,
            Decimal("-99999999999999999999.9999999999"),
            3.40282e38,
            1.7976931348623157e308,
            "1000-01-01",
            "-838:59:59.000",
            "1000-01-01 00:00:00.000000",
            "1970-01-01 00:00:01.000000",
            1901,
            "",
            "",
            "",
            b"\x00\x00\x00\x00",
            b"",
            b"",
            "{}",
            "x",
            "",
            "POINT(0 0)",
        ),
        (
            2,
            127,
            0,
            32767,
            0,
            8388607,
            2147483647,
            0,
            9223372036854775807,
            0,
            0,
            Decimal("99999999999999999999.9999999999"),
            -1.17549e-38,
            2.2250738585072014e-308,
            "9999-12-31",
            "838:59:59.000",
            "9999-12-31 23:59:59.999999",
            "2038-01-19 03:14:07.999999",
            2155,
            "ü😀'\\\"",
            "a'b\\c\0d\x1az 😀𝄞",
            "line1\nline2\ttab",
            b"\xff\x00'\\",
            b"\x00\xff\x1a\\",
            b"\x00" * 10,
            '{"k": [1, 2.5, "ß"], "n": null}',
            "z",
            "a,b,c",
            "POLYGON((0 0,1 0,1 1,0 0))",
        ),
        (3, *([None] * 28)),
    ]
    rows = list(edge)
    for i in range(4, n + 1):
        rows.append(
            (
                i,
                rng.randrange(-128, 128),
                rng.randrange(256),
                rng.randrange(-32768, 32768),
                rng.randrange(65536),
                rng.randrange(-8388608, 8388608),
                rng.randrange(-(2**31), 2**31),
                rng.randrange(2**32),
                rng.randrange(-(2**63), 2**63),
                rng.randrange(2**64),
                rng.randrange(1024),
                Decimal(rng.randrange(-(10**20), 10**20)) / 10**10,
                rng.uniform(-1e6, 1e6),
                rng.uniform(-1e300, 1e300),
                (_START + timedelta(days=rng.randrange(3000))).date(),
                f"{rng.randrange(-838, 839)}:{rng.randrange(60):02d}:00",
                _START + timedelta(seconds=rng.randrange(10**9), microseconds=rng.randrange(10**6)),
                _START + timedelta(seconds=rng.randrange(10**8), microseconds=rng.randrange(10**6)),
                rng.randrange(1901, 2156),
                rng.choice(_NAMES)[:10],
                rng.choice(_NAMES) + rng.choice(_EMOJI),
                "x" * rng.randrange(0, 300),
                rng.randbytes(4),
                rng.randbytes(rng.randrange(33)),
                rng.randbytes(rng.randrange(200)),
                json.dumps({"i": i, "v": rng.random()}),
                rng.choice("xyz"),
                rng.choice(["a", "b,c", ""]),
                f"POINT({rng.randrange(-180, 180)} {rng.randrange(-90, 90)})",
            )
        )
    return rows


def insert_type_zoo(session: Session, rows: list[tuple], table: str = "type_zoo") -> int:
    """Insert type_zoo rows; the last value is geometry as WKT."""
    return _insert(session, table, rows, marks="(" + ", ".join(["%s"] * (len(rows[0]) - 1)) + ", ST_GeomFromText(%s))")
