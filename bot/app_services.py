"""The services handlers call, assembled once per process and passed in explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from bot.command_service import CommandService
from bot.delivery import Delivery
from bot.home import Home
from bot.interactions import Interactions
from bot.settings import Settings
from bot.workflow import Workflow
from storage.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    client: AsyncWebClient
    delivery: Delivery
    workflow: Workflow
    commands: CommandService
    interactions: Interactions
    home: Home
