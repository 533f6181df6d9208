"""Storage: the database engine and sessions, tables, migrations, safe array files."""
