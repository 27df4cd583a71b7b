from __future__ import annotations

from fastapi import APIRouter

from shared.errors import problem_responses

router = APIRouter(tags=["claims"], responses=problem_responses())
