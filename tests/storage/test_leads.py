from __future__ import annotations

import asyncio

from storage import leads as lead_store
from storage.db import Database


async def test_set_replace_clear_and_list(db: Database) -> None:
    async with db.session() as session:
        assert await lead_store.lead_for(session, department="support") is None
        await lead_store.set_lead(session, department="support", user_id="U1", updated_by="UA")
        await lead_store.set_lead(session, department="pr", user_id="U2", updated_by="UA")
    async with db.session() as session:
        await lead_store.set_lead(session, department="support", user_id="U3", updated_by="UB")
    async with db.session() as session:
        assert await lead_store.list_leads(session) == {"support": "U3", "pr": "U2"}
        assert await lead_store.clear_lead(session, department="pr") is True
        assert await lead_store.clear_lead(session, department="pr") is False
    async with db.session() as session:
        assert await lead_store.list_leads(session) == {"support": "U3"}


async def test_admins_setting_a_lead_at_once_leave_one_lead(db: Database) -> None:
    async def set_to(user_id: str) -> None:
        async with db.session() as session:
            await lead_store.set_lead(session, department="legal", user_id=user_id, updated_by="UA")

    await asyncio.gather(*(set_to(f"U{n}") for n in range(10)))
    async with db.session() as session:
        leads = await lead_store.list_leads(session)
    assert list(leads) == ["legal"] and leads["legal"] in {f"U{n}" for n in range(10)}
