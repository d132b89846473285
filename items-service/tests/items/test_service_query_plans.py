"""Query plans that must hold at any table size, including asyncpg's generic plans.

asyncpg prepares statements, and PostgreSQL may switch a prepared statement to a generic plan
that ignores the parameter values. With ``LIMIT $n`` unknown, a naive "my items" query gets a
generic plan walking the primary key and filtering on the owner: fine for an owner of many
items, a full index scan for an owner of none.
"""

from __future__ import annotations

import asyncpg

from items_service.items import service


async def _generic_plan(sql: asyncpg.Connection, query: str, args: str) -> str:
    await sql.execute("SET plan_cache_mode = force_generic_plan")
    await sql.execute(f"PREPARE q AS {query}")
    try:
        rows = await sql.fetch(f"EXPLAIN EXECUTE q{args}")
    finally:
        await sql.execute("DEALLOCATE q")
    return "\n".join(row[0] for row in rows)


async def _skewed_items(sql: asyncpg.Connection) -> None:
    # A few owners, one of them owning most items: the distribution that misleads planners.
    await sql.execute(
        "INSERT INTO items (title, owner_id) "
        "SELECT 'bulk', CASE WHEN g % 10 = 0 THEN 1 + g % 7 ELSE 1 END "
        "FROM generate_series(1, 30000) AS g"
    )
    await sql.execute("ANALYZE items")


async def test_my_items_page_uses_the_owner_index_even_in_a_generic_plan(
    sql: asyncpg.Connection,
) -> None:
    await _skewed_items(sql)
    plan = await _generic_plan(sql, service._LIST_OWNED, "(424242, 0, 21, 0)")
    assert "Index Scan using ix_items_owner_id_id on items" in plan, plan
    assert "pk_items" not in plan
    assert "Seq Scan on items" not in plan


async def test_list_page_walks_the_primary_key(sql: asyncpg.Connection) -> None:
    await _skewed_items(sql)
    plan = await _generic_plan(sql, service._LIST_ALL, "(0, 21, 0)")
    assert "Index Scan using pk_items on items" in plan, plan
    assert "Seq Scan on items" not in plan
