"""/healthz: the gateway process answers (used by the supervisor and Kubernetes probes)."""

from fastapi import APIRouter

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
