from __future__ import annotations

from fastapi import APIRouter

from shared.errors import problem_responses

router = APIRouter(tags=["persons"], responses=problem_responses())
