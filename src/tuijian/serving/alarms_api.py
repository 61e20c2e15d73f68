"""Tracking alarms over HTTP: what is firing now, or the checks of any closed day."""

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from tuijian.serving.errors import RequestError
from tuijian.serving.service import Service


def alarms_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

    @router.get("/alarms")
    def alarms(
        date: Annotated[str | None, Query(description="a local date (YYYY-MM-DD): run the "
                                                      "daily checks over it now")] = None,
        refresh: Annotated[bool, Query(description="run the stream checks now instead of "
                                                   "answering the last minute's")] = False,
    ) -> dict[str, Any]:
        """The alarms firing (the last stream check and the last closed day's), or, with
        `date`, that day's checks."""
        if date is not None:
            try:
                day = dt.date.fromisoformat(date)
            except ValueError:
                raise RequestError("date", f"{date!r} is not a date (YYYY-MM-DD)") from None
            return {"alarms": [a.to_dict() for a in service.check_day(day)]}
        if refresh:
            service.alarms.update("stream", service.monitor.check())
        return {"alarms": service.alarms.current()}

    return router
