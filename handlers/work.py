"""What each job does (bot.jobs), and what happens when Slack will never take it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.approvals import ChangeRequest, Status
from bot.jobs import Job, Kind, Note, drift_of
from bot.service import AutoRepay
from bot.worker import Permanent
from handlers import blocks
from handlers.announce import Announcer

log = logging.getLogger("handlers.work")

NOTES: dict[str, Callable[[ChangeRequest], blocks.Message]] = {
    Note.RESULT: blocks.requester_result,
    Note.POSTED: blocks.posted_late,
    Note.SUPERSEDED: blocks.superseded,
}


class JobRunner:
    def __init__(self, service: AutoRepay, announcer: Announcer) -> None:
        self._service = service
        self._announcer = announcer

    async def __call__(self, job: Job) -> None:
        if job.kind is Kind.DRIFT_ALERT:
            await self._drift_alert(job)
            return
        request = await self._service.store.get(job.request_id)
        if request is None:
            raise Permanent("no_such_request")
        try:
            match job.kind:
                case Kind.APPLY:
                    await self._service.execute(request, job)
                case Kind.POST:
                    await self._post(job, request)
                case Kind.UPDATE:
                    await self._announcer.update(request)
                case Kind.THREAD:
                    resumed = job.note == "resumed" or job.resumed
                    await self._announcer.thread_reply(request, resumed=resumed)
                case Kind.TELL:
                    await self._announcer.tell_requester(request, self._note(job, request))
        except Permanent as exc:
            await self._fallback(job, exc)
            raise

    async def _post(self, job: Job, request: ChangeRequest) -> None:
        if request.approval_ts:
            return
        # A retry first looks for the message an earlier try may have posted: recorded,
        # it gets updated like any other (also when the request ended meanwhile).
        ts = await self._announcer.find_approval(request) if job.is_retry else None
        if ts is None and request.status is Status.PENDING:
            ts = await self._announcer.post_approval(request)
        if ts is not None:
            await self._service.posted(job, request.approval_channel, ts)
        # else: superseded or expired before anything was posted: nothing to ask

    async def _drift_alert(self, job: Job) -> None:
        """Post a drift's alert once: a retry first looks for the one an earlier try may
        have posted. Slack refusing the channel for good ends the job, with a warning."""
        drift_id = drift_of(job.request_id)
        drift = await self._service.store.drift(drift_id) if drift_id is not None else None
        if drift is None:
            raise Permanent("no_such_drift")
        if drift.alert_ts:
            return  # posted and recorded by an earlier attempt
        channel = self._service.approval_channel
        try:
            ts = await self._announcer.find_drift(channel, drift) if job.is_retry else None
            ts = ts or await self._announcer.post_drift(channel, drift)
        except Permanent as exc:
            log.warning("drift alert not posted drift=%d account=%s channel=%s: %s; invite "
                        "the bot to the approval channel (the audit log has the drift)",
                        drift.id, drift.account, channel, exc)
            raise
        await self._service.drift_alerted(job, drift, channel, ts)

    def _note(self, job: Job, request: ChangeRequest) -> blocks.Message:
        if job.note == Note.NOT_POSTED:
            return blocks.approval_not_posted(request, request.error_code.removeprefix("slack:"))
        return NOTES.get(job.note, blocks.requester_result)(request)

    async def _fallback(self, job: Job, exc: Permanent) -> None:
        """The documented fallbacks for what Slack refuses for good (README)."""
        if job.kind is Kind.POST:
            await self._service.abandon(job, f"slack:{exc.code}")
        elif job.kind is Kind.THREAD:
            log.warning("thread reply not posted request=%s: %s; the message update and the "
                        "note to the requester still say it", job.request_id, exc)
