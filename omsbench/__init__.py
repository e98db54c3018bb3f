"""omsbench: migrate a live MySQL database into OceanBase and prove that nothing was lost."""

__version__ = "0.1.0"
