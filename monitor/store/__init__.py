"""Storage with SQLModel: tables, the engine (SQLite or PostgreSQL), and the queries we run."""
