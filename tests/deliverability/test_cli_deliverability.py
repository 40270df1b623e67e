"""`postroom dkim` and `postroom doctor` as a user runs them (real processes), against an
authoritative DNS server on loopback: a key is made, its printed record is published,
activation checks it, and the mail sent afterwards carries a signature dkimpy verifies."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import dkim

from dns_server import serving_zone, silent_nameserver
from procs import postroom
from smtp_servers import smtp_server

SECRET = "0123456789abcdef0123456789abcdef-secret"
CONFIG = f"""
dsn: sqlite:///./postroom.db
secrets: {{default: ["{SECRET}"]}}
courier:
  delivery_strategy: outbox
  outbox_path: ./outbox
  smtp: {{from_address: no-reply@example.org}}
  dkim: {{domain: example.org}}
"""


def published_zone(printed: str) -> str:
    """The zone that publishes the record ``dkim generate`` printed, as printed."""
    line = next(ln for ln in printed.splitlines() if "._domainkey." in ln and " IN TXT " in ln)
    name = line.split()[0]
    strings = " ".join(re.findall(r'"[^"]*"', line))
    return (
        f"{name} 300 IN TXT {strings}\n"
        'example.org. 300 IN TXT "v=spf1 mx ~all"\n'
        '_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:d@example.org"\n'
        "example.org. 300 IN MX 10 mx.example.org.\n"
    )


def test_generate_publish_activate_send_verify(tmp_path: Path) -> None:
    (tmp_path / "postroom.yaml").write_text(CONFIG)
    made = postroom(tmp_path, "dkim", "generate", "--selector", "pr2026", "--algorithm", "rsa")
    assert made.returncode == 0, made.stderr
    assert "-----BEGIN" not in made.stdout  # the private key is never printed
    zone = published_zone(made.stdout)
    assert all(len(s) <= 257 for s in re.findall(r'"[^"]*"', zone))  # 255 bytes + quotes

    with silent_nameserver() as silent:
        refused = postroom(
            tmp_path, "dkim", "activate", "--selector", "pr2026", "--nameserver", silent
        )
    assert refused.returncode == 1 and "not activated" in refused.stderr
    assert "Traceback" not in refused.stderr
    listed = json.loads(postroom(tmp_path, "dkim", "list", "--json").stdout)
    assert [(k["selector"], k["state"]) for k in listed] == [("pr2026", "inactive")]

    with serving_zone(zone) as (nameserver, _):
        activated = postroom(
            tmp_path, "dkim", "activate", "--selector", "pr2026", "--nameserver", nameserver
        )
        assert activated.returncode == 0, activated.stderr
        doctor = postroom(
            tmp_path, "doctor", "--domain", "example.org", "--tenant", "default",
            "--nameserver", nameserver, "--json",
        )  # fmt: skip
    report = json.loads(doctor.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["domain"] == "example.org"
    assert by_name["dkim"]["code"] == "dkim_ok" and by_name["alignment"]["status"] == "ok"
    assert set(by_name["spf"]) == {"name", "status", "code", "message", "fix"}
    assert doctor.returncode == 0, doctor.stdout

    sent = postroom(tmp_path, "send", "--to", "you@example.net", "--subject", "Hi", "--text", "x")
    assert sent.returncode == 0, sent.stderr
    assert postroom(tmp_path, "worker", "--drain").returncode == 0
    [eml] = (tmp_path / "outbox").glob("*.eml")
    record = "".join(re.findall(r'"([^"]*)"', zone.splitlines()[0])).encode()
    assert dkim.verify(eml.read_bytes(), dnsfunc=lambda name, timeout=5: record)
    with sqlite3.connect(tmp_path / "postroom.db") as db:
        [(stored,)] = db.execute("SELECT private_key FROM dkim_keys").fetchall()
    assert stored.startswith("enc:v1:") and "PRIVATE KEY" not in stored


def test_doctor_exits_1_on_a_failed_check_and_2_on_bad_usage(tmp_path: Path) -> None:
    (tmp_path / "postroom.yaml").write_text(CONFIG)
    with serving_zone("example.org. 300 IN MX 10 mx.example.org.\n") as (nameserver, _):
        result = postroom(tmp_path, "doctor", "--domain", "example.org", "--nameserver", nameserver)
    assert result.returncode == 1, result.stdout
    assert "spf_missing" in result.stdout and "dmarc_missing" in result.stdout
    assert 'TXT _dmarc.example.org "v=DMARC1; p=quarantine;' in result.stdout
    bad = postroom(tmp_path, "doctor", "--domain", "example.org", "--nameserver", "dns.google")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --nameserver")
    assert "Traceback" not in bad.stderr
    unknown = postroom(tmp_path, "doctor", "--domain", "example.org", "--tenant", "nope")
    assert unknown.returncode == 2 and "unknown tenant 'nope'" in unknown.stderr


def test_test_smtp_ends_with_a_verdict_that_never_changes_its_exit_code(tmp_path: Path) -> None:
    with smtp_server() as srv:
        (tmp_path / "postroom.yaml").write_text(
            "dsn: sqlite:///./postroom.db\n"
            "courier:\n"
            f"  smtp: {{connection_uri: 'smtp://127.0.0.1:{srv.port}/?disable_starttls=true',"
            " from_address: no-reply@example.org}\n"
        )
        with serving_zone('_dmarc.example.org. 300 IN TXT "v=DMARC1; p=none"\n') as (ns, _):
            human = postroom(tmp_path, "test-smtp", "--to", "you@example.net",
                             env={"DNS_NAMESERVERS": ns})  # fmt: skip
            as_json = postroom(tmp_path, "test-smtp", "--no-send", "--json",
                               env={"DNS_NAMESERVERS": ns})  # fmt: skip
        with silent_nameserver() as silent:
            skipped = postroom(tmp_path, "test-smtp", "--no-send", "--json",
                               env={"DNS_NAMESERVERS": silent})  # fmt: skip
    assert human.returncode == 0, human.stderr
    last = human.stdout.strip().splitlines()[-1]
    assert last.startswith("deliverability of example.org: failed: spf_missing"), last
    assert "postroom doctor --domain example.org --tenant default" in last
    assert as_json.returncode == 0
    checked = json.loads(as_json.stdout)["deliverability"]
    assert checked["status"] == "fail" and "dmarc_policy_none" in checked["warnings"]
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["deliverability"]["status"] == "skipped"
