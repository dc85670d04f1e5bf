"""`make demo`: seeded sandboxes, every sync DAG run for real (dag.test), a readable report.

1. Both sandboxes are reset and seeded (thousands of people on each side, about a third of them
   on both sides by email, some defective rows, marketing history, opportunities).
2. Preflight (is the org ready?) and a backup of both systems before the first write.
3. Initial load: each DAG runs once with full_resync (what a new installation does first).
4. An hour of activity: salespeople edit, convert, merge and delete in Salesforce; marketers edit
   leads, change scores, fill forms and send emails in Lead Gen & CRM.
5. The hourly run for that hour syncs exactly those changes.
6. The same hour again: nothing left to write (echo suppression, idempotency).

Airflow's own output goes to .airflow/demo-logs/; this script prints the run reports. The state
store, run reports and quarantine stay in .airflow/, so `make airflow` shows them in the UI.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local

DAG_ORDER = ["sync_leads_contacts", "sync_opportunities", "sync_engagement_activities"]
LOG_DIR = local.AIRFLOW_HOME / "demo-logs"


@contextlib.contextmanager
def quiet(log_path: Path):
    """Send everything Airflow prints (fd 1 and 2) to ``log_path`` while a DAG runs."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def say(msg: str = "") -> None:
    print(msg, flush=True)


class Runner:
    failures: list[str]

    def __init__(self) -> None:
        self.failures = []
        from airflow.dag_processing.dagbag import DagBag

        with quiet(LOG_DIR / "00-dagbag.log"):
            bag = DagBag(dag_folder=str(local.ROOT / "dags"))
        if bag.import_errors:
            raise SystemExit(f"DAG import errors: {bag.import_errors}")
        self.dags = bag.dags
        self.defaults = {d: {k: dag.params[k] for k in dag.params} for d, dag in bag.dags.items()}
        self.n = 0

    def available(self) -> list[str]:
        return [d for d in DAG_ORDER if d in self.dags]

    def run(self, dag_id: str, until: datetime, **conf: Any) -> dict[str, Any]:
        """A "sync now" run requested at ``until`` (a manual run without a logical date, as the
        Trigger button makes): it syncs from the watermark to ``until``, and it takes no
        scheduled slot, so the scheduler of `make airflow` carries on with the next hour."""
        from crm_sync.runtime import shared_store

        self.n += 1
        dag = self.dags[dag_id]
        for t in dag.tasks:
            # The demo shows outcomes; a failing task should fail now, not after its retry delay.
            t.retry_delay = timedelta(0)
            t.retry_exponential_backoff = False
        started = time.monotonic()
        with quiet(LOG_DIR / f"{self.n:02d}-{dag_id}.log"):
            dr = dag.test(
                logical_date=None, run_after=until, run_conf={**self.defaults[dag_id], **conf}
            )
        state = str(getattr(dr.state, "value", dr.state))
        run = shared_store("sync_state").get_run(dag_id, dr.run_id)
        report = dict(run.report) if run and run.report else {"dag_id": dag_id, "status": state}
        report["_seconds"] = time.monotonic() - started
        report["_state"] = state
        if state != "success":
            self.failures.append(f"{dag_id} ({until:%H:%M})")
            failed = [
                ti.task_id
                for ti in dr.get_task_instances()
                if str(getattr(ti.state, "value", ti.state)) == "failed"
            ]
            report["_failed_tasks"] = failed
        return report


def show(report: dict[str, Any]) -> None:
    from crm_sync.report import summarize

    lines = summarize(report)
    lines[0] += f"  ({report['_seconds']:.0f} s)"
    for line in lines:
        say("  " + line)
    if report.get("_state") != "success":
        say(
            f"  !! DAG run {report['_state']}: failed tasks {report.get('_failed_tasks')} (logs in {LOG_DIR})"
        )


def activity(loc: local.Local, at: datetime) -> list[str]:
    """An hour of work by salespeople and marketers on records the initial load linked."""
    from crm_sync.runtime import salesforce_client, shared_store

    store = shared_store("sync_state")
    links = store.all_links("person")
    leads = [lk for lk in links if lk.sf_object == "Lead"]
    contacts = [lk for lk in links if lk.sf_object == "Contact"]
    done: list[str] = []
    local.freeze(loc, at)
    sf = salesforce_client()
    # Salesforce: edits, a conversion, a merge, deletions, new people
    for lk in leads[:3]:
        loc.sf_admin("PATCH", f"records/Lead/{lk.sf_id}", {"Title": "Head of Operations"})
    done.append("Salesforce: 3 lead titles edited")
    if len(leads) > 4:
        loc.sf_admin(
            "POST",
            "actions/convert-lead",
            {"leadId": leads[3].sf_id, "doNotCreateOpportunity": True},
        )
        done.append(f"Salesforce: lead {leads[3].sf_id} converted to a contact")
    if len(contacts) > 2:
        loc.sf_admin(
            "POST",
            "actions/merge",
            {"object": "Contact", "masterId": contacts[0].sf_id, "mergeIds": [contacts[1].sf_id]},
        )
        done.append(f"Salesforce: contact {contacts[1].sf_id} merged into {contacts[0].sf_id}")
    if len(leads) > 7:
        loc.sf_admin("POST", "actions/delete", {"ids": [leads[5].sf_id, leads[6].sf_id]})
        done.append("Salesforce: 2 linked leads deleted")
    for i in range(2):
        loc.sf_admin(
            "POST",
            "records/Contact",
            {
                "FirstName": "New",
                "LastName": f"Contact{i}",
                "Email": f"new.contact{i}@demo.example",
            },
        )
    done.append("Salesforce: 2 contacts created")
    opps = list(
        sf.query("SELECT Id, StageName FROM Opportunity WHERE IsClosed = false ORDER BY Id LIMIT 2")
    )
    for o in opps:
        loc.sf_admin(
            "PATCH",
            f"records/Opportunity/{o['Id']}",
            {"StageName": "Negotiation/Review", "Amount": 125000},
        )
    if opps:
        done.append(f"Salesforce: {len(opps)} opportunities moved to Negotiation/Review")
    # Lead Gen & CRM: edits, scores, form fills, email activity, page visits
    for lk in leads[8:11]:
        loc.lg_admin("POST", f"leads/{lk.lg_id}", {"fields": {"phoneNumber": "+1 555 0199"}})
    for lk in leads[11:14]:
        loc.lg_admin("POST", f"leads/{lk.lg_id}/score", {"leadScore": 88})
    done.append("Lead Gen & CRM: 3 phone numbers edited, 3 scores changed")
    for i in range(2):
        loc.lg_admin(
            "POST",
            "forms/submit",
            {
                "emailAddress": f"webinar{i}@demo.example",
                "formName": "Webinar signup",
                "fields": {"firstName": "Web", "lastName": f"Inar{i}", "companyName": "Demo Corp"},
            },
        )
    done.append("Lead Gen & CRM: 2 new leads from a form")
    targets = [int(lk.lg_id) for lk in leads[14:19] if lk.lg_id.isdigit()]
    if targets:
        job = loc.lg_admin(
            "POST", "emails/send", {"subject": "November product update", "leadIDs": targets}
        )
        for lid in targets[:3]:
            loc.lg_admin("POST", "emails/open", {"leadID": lid, "emailJobID": job["emailJobID"]})
            for _ in range(2):
                loc.lg_admin(
                    "POST",
                    "emails/click",
                    {
                        "leadID": lid,
                        "emailJobID": job["emailJobID"],
                        "url": "https://demo.example/pricing",
                    },
                )
        loc.lg_admin(
            "POST", "page-visits", {"leadID": targets[0], "url": "https://demo.example/pricing"}
        )
        done.append(
            f"Lead Gen & CRM: email sent to {len(targets)} leads, 3 opened and clicked twice, 1 page visit"
        )
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=2400, help="people seeded on each side")
    args = ap.parse_args()
    t0 = time.monotonic()
    say("== Lead Gen & CRM <-> Salesforce sync: demo")
    say("-- preparing AIRFLOW_HOME (.airflow) and the sandboxes")
    local.ensure_airflow_home()
    loc = local.start_sandboxes()
    try:
        now = datetime.now(UTC)
        hour = local.hour_floor(now)  # the hourly run for [hour - 1h, hour) is the "current" one
        # Fresh sandboxes need a fresh sync state: links of an earlier demo point at records
        # the reseed removed.
        local.reset_sync_state()
        seeded = local.seed(loc, at=hour - timedelta(hours=3), people=args.people)
        say(
            f"   seeded Salesforce {seeded['salesforce']} ({sum(seeded['salesforce_defects'].values())} defective rows), "
            f"Lead Gen & CRM {seeded['leadgen']} leads ({seeded['leadgen_defects']} defective), "
            f"{seeded['overlap_imported']} people on both sides by email"
        )
        runner = Runner()
        names = local.register_connections()
        say(
            f"   connections registered: {', '.join(names)} (+ sync_state: SQLite under .airflow/crm_sync)"
        )
        dags = runner.available()
        say(f"   DAGs: {', '.join(dags)}")

        say("\n-- 0. preflight and backup (the sync DAGs' gate then passes at once)")
        from crm_sync.backup.demo import preflight_and_backup

        with quiet(LOG_DIR / "00-preflight-backup.log"):
            ready = preflight_and_backup()
        for line in ready.lines():
            say(f"   {line}")
        if not ready.ok:
            say("\nFAILED: the preflight did not pass; nothing was synced")
            return 1

        say("\n-- 1. initial load (full_resync), as a new installation does first")
        local.freeze(loc, hour - timedelta(minutes=90))
        for dag_id in dags:
            show(runner.run(dag_id, hour - timedelta(hours=1), full_resync=True))

        say(
            f"\n-- 2. an hour of work in both systems ({(hour - timedelta(hours=1)):%H:%M}-{hour:%H:%M} UTC)"
        )
        for line in activity(loc, hour - timedelta(minutes=40)):
            say(f"   {line}")

        say("\n-- 3. the hourly runs for that hour")
        local.freeze(loc, hour - timedelta(minutes=20))
        reports = {}
        for dag_id in dags:
            reports[dag_id] = runner.run(dag_id, hour)
            show(reports[dag_id])

        say("\n-- 4. the same hour once more: nothing left to write")
        from crm_sync.report import writes

        total = 0
        for dag_id in dags:
            again = runner.run(dag_id, hour + timedelta(seconds=1))
            total += writes(again)
            say(f"  {dag_id}: {writes(again)} writes, status {again.get('status')}")
        say(f"   => {total} writes on the rerun")
        failures = runner.failures
    finally:
        with contextlib.suppress(Exception):
            local.freeze(loc, None)
        loc.stop()
    say(f"\nDone in {time.monotonic() - t0:.0f} s. Airflow logs: {LOG_DIR}")
    say(
        "Open the UI with `make airflow` (admin/admin): DAG runs, and Browse -> Sync health for the"
    )
    say("run overview, the quarantine (with reasons) and the record lookup.")
    if failures:
        say(f"\nFAILED runs: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
