"""Narrow rows for ``bench full --shape narrow``: a database shaped like the public "employees" HR
sample, generated to its real row counts (3.9M rows in 6 tables; 2.8M salaries of four
integer/date columns under a composite key; 6 foreign keys; 2 views).

Rows are made inside MariaDB from its sequence engine (``seq_1_to_N``), so that preparing costs
seconds, not a client's round trips. ``rows`` scales every table but the two small ones.
"""

from __future__ import annotations

from omsbench.endpoints.connection import Session, connect
from omsbench.lab.servers import MariaDB

DATABASE = "hrbench"
EMPLOYEES_PER_ROW = 300_024 / 3_919_015
"""The sample's employees per row of the whole database."""
TABLES = ("employees", "departments", "dept_manager", "dept_emp", "titles", "salaries")

_SCHEMA = [
    """CREATE TABLE employees (emp_no INT NOT NULL, birth_date DATE NOT NULL, first_name VARCHAR(14) NOT NULL,
        last_name VARCHAR(16) NOT NULL, gender ENUM('M','F') NOT NULL, hire_date DATE NOT NULL,
        PRIMARY KEY (emp_no))""",
    """CREATE TABLE departments (dept_no CHAR(4) NOT NULL, dept_name VARCHAR(40) NOT NULL,
        PRIMARY KEY (dept_no), UNIQUE KEY dept_name (dept_name))""",
    """CREATE TABLE dept_manager (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL,
        to_date DATE NOT NULL, PRIMARY KEY (emp_no, dept_no), KEY dept_no (dept_no),
        CONSTRAINT dept_manager_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE,
        CONSTRAINT dept_manager_ibfk_2 FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE)""",
    """CREATE TABLE dept_emp (emp_no INT NOT NULL, dept_no CHAR(4) NOT NULL, from_date DATE NOT NULL,
        to_date DATE NOT NULL, PRIMARY KEY (emp_no, dept_no), KEY dept_no (dept_no),
        CONSTRAINT dept_emp_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE,
        CONSTRAINT dept_emp_ibfk_2 FOREIGN KEY (dept_no) REFERENCES departments (dept_no) ON DELETE CASCADE)""",
    """CREATE TABLE titles (emp_no INT NOT NULL, title VARCHAR(50) NOT NULL, from_date DATE NOT NULL,
        to_date DATE, PRIMARY KEY (emp_no, title, from_date),
        CONSTRAINT titles_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE)""",
    """CREATE TABLE salaries (emp_no INT NOT NULL, salary INT NOT NULL, from_date DATE NOT NULL,
        to_date DATE NOT NULL, PRIMARY KEY (emp_no, from_date),
        CONSTRAINT salaries_ibfk_1 FOREIGN KEY (emp_no) REFERENCES employees (emp_no) ON DELETE CASCADE)""",
    """CREATE VIEW dept_emp_latest_date AS SELECT emp_no, MAX(from_date) AS from_date, MAX(to_date) AS to_date
        FROM dept_emp GROUP BY emp_no""",
    """CREATE VIEW current_dept_emp AS SELECT l.emp_no, d.dept_no, l.from_date, l.to_date
        FROM dept_emp d INNER JOIN dept_emp_latest_date l
        ON d.emp_no = l.emp_no AND d.from_date = l.from_date AND l.to_date = d.to_date""",
]

_DEPARTMENTS = [
    ("d001", "Marketing"), ("d002", "Finance"), ("d003", "Human Resources"), ("d004", "Production"),
    ("d005", "Development"), ("d006", "Quality Management"), ("d007", "Sales"), ("d008", "Research"),
    ("d009", "Customer Service"),
]  # fmt: skip

_DAY = "DATE '1985-01-01' + INTERVAL"
_FILL = [
    # 300,024 employees
    f"""INSERT INTO employees SELECT seq, DATE '1952-02-01' + INTERVAL (seq * 37) % 4700 DAY,
        CONCAT('Given', seq % 1275), CONCAT('Family', seq % 1637), IF(seq % 5 < 3, 'M', 'F'),
        {_DAY} (seq * 13) % 5000 DAY FROM seq_1_to_{{employees}}""",
    # 24 managers: 2 to 4 per department
    """INSERT INTO dept_manager SELECT 1 + (seq * 97) % {employees}, CONCAT('d00', 1 + seq % 9),
        DATE '1985-01-01' + INTERVAL seq * 300 DAY, DATE '9999-01-01' FROM seq_1_to_24""",
    # 1.1 departments per employee: 331,603 in the sample
    f"""INSERT INTO dept_emp SELECT e.emp_no, CONCAT('d00', 1 + (e.emp_no + s.seq * 4) % 9),
        {_DAY} (e.emp_no % 5000 + s.seq * 400) DAY, IF(s.seq = 0 AND e.emp_no % 10 = 0,
        {_DAY} (e.emp_no % 5000 + 399) DAY, DATE '9999-01-01')
        FROM employees e JOIN seq_0_to_1 s ON s.seq = 0 OR e.emp_no % 10 = 0""",
    # 1.5 titles per employee: 443,308
    f"""INSERT INTO titles SELECT e.emp_no, ELT(1 + (e.emp_no + s.seq) % 7, 'Staff', 'Senior Staff', 'Engineer',
        'Senior Engineer', 'Assistant Engineer', 'Technique Leader', 'Manager'),
        {_DAY} (e.emp_no % 5000 + s.seq * 1200) DAY, IF(s.seq = 0 AND e.emp_no % 2 = 0,
        {_DAY} (e.emp_no % 5000 + 1199) DAY, DATE '9999-01-01')
        FROM employees e JOIN seq_0_to_1 s ON s.seq = 0 OR e.emp_no % 2 = 0""",
    # 9.5 salaries per employee: 2,844,047
    f"""INSERT INTO salaries SELECT e.emp_no, 38000 + (e.emp_no * 13 + s.seq * 977) % 90000,
        {_DAY} (e.emp_no % 3000 + s.seq * 365) DAY, {_DAY} (e.emp_no % 3000 + s.seq * 365 + 365) DAY
        FROM employees e JOIN seq_0_to_17 s ON s.seq <= (e.emp_no * 7) % 18""",
]


def prepare(server: MariaDB, rows: int, database: str = DATABASE) -> None:
    """About ``rows`` rows in the sample's proportions; rebuilt only when the size changed."""
    employees = max(100, round(rows * EMPLOYEES_PER_ROW))
    with connect(server.endpoint().dsn()) as session:
        if _count(session, database, "employees") == employees:
            return
        session.execute(f"DROP DATABASE IF EXISTS {database}")
        session.execute(f"CREATE DATABASE {database}")
        session.execute(f"USE {database}")
        for statement in _SCHEMA:
            session.execute(statement)
        session.conn.cursor().executemany("INSERT INTO departments VALUES (%s, %s)", _DEPARTMENTS)
        for statement in _FILL:
            session.execute(statement.format(employees=employees))


def count(session: Session, database: str) -> int:
    """Rows in every table of the shape under ``database``."""
    return sum(_count(session, database, table) or 0 for table in TABLES)


def _count(session: Session, database: str, table: str) -> int | None:
    found = session.scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (database, table)
    )
    return int(session.scalar(f"SELECT COUNT(*) FROM {database}.{table}")) if found else None
