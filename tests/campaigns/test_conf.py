"""NOTIFIER options: each declared once (the domain's in campaigns/conf.py, the transport
layer's in channels/conf.py), each settable from the environment as NOTIFIER_<NAME> (typed),
bad values refused at startup by name, and no code reading settings.NOTIFIER behind the conf
modules' backs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from campaigns.conf import OPTIONS as DOMAIN_OPTIONS
from campaigns.conf import AppSettings, app_settings, options_from_environment
from channels.conf import OPTIONS as CHANNEL_OPTIONS
from channels.conf import ChannelSettings, Option, channel_settings
from tests.conftest import ROOT, subprocess_env

#: Every NOTIFIER option, from both declarations.
OPTIONS = (*DOMAIN_OPTIONS, *CHANNEL_OPTIONS)


def env_sample(option: Option) -> tuple[str, object]:
    """A value for the option's variable, unlike its default, and what it must read as."""
    if option.type is bool:
        return ("yes", True) if not option.default else ("off", False)
    if option.type is int:
        return str(option.default + 7), option.default + 7
    if option.type is float:
        return str(option.default + 1.25), option.default + 1.25
    if option.type is dict:
        value = {f"from-env-{option.name.lower()}": {"NAME": option.name}}
        return json.dumps(value), value
    return f"from-env-{option.name.lower()}", f"from-env-{option.name.lower()}"


def settings_process(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    """Run ``code`` after django.setup() with the production settings and ``env`` added."""
    base = {k: v for k, v in subprocess_env().items() if not k.startswith("NOTIFIER_")}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_declared_option_is_read_from_its_environment_variable():
    samples = {option.name: env_sample(option) for option in OPTIONS}
    env = {f"NOTIFIER_{name}": text for name, (text, _) in samples.items()}
    process = settings_process(
        env,
        "import json; from campaigns.conf import OPTIONS, app_settings; "
        "from channels.conf import OPTIONS as C, channel_settings; "
        "print(json.dumps({o.name: getattr(app_settings, o.name) for o in OPTIONS} | "
        "{o.name: getattr(channel_settings, o.name) for o in C}))",
    )
    assert process.returncode == 0, process.stderr
    read = json.loads(process.stdout.strip().splitlines()[-1])
    assert read == {name: expected for name, (_, expected) in samples.items()}
    assert len(OPTIONS) >= 22  # the options of this writing, retry and link options included


def test_every_option_is_declared_as_an_option_once():
    """A bare property would be invisible to the environment and to the tests above."""
    for declared, options in ((AppSettings, DOMAIN_OPTIONS), (ChannelSettings, CHANNEL_OPTIONS)):
        public = {name for name in vars(declared) if not name.startswith("_")}
        assert public == {option.name for option in options}
    assert len({option.name for option in OPTIONS}) == len(OPTIONS)
    assert {option.name for option in CHANNEL_OPTIONS} == {
        "CHANNELS",
        "EMAIL_DOMAIN",
        "UNSUBSCRIBE_MAILTO",
    }
    for option in OPTIONS:
        assert option.type in (int, float, bool, str, dict), option.name
        assert option.doc.strip(), option.name
        assert option.coerce(option.default) == option.default, option.name


def test_the_readme_documents_every_option():
    readme = (ROOT / "README.md").read_text()
    missing = [o.name for o in OPTIONS if f"| `{o.name}` |" not in readme]
    assert missing == []


def test_an_invalid_environment_value_stops_startup_naming_the_variable():
    process = settings_process({"NOTIFIER_BATCH_SIZE": "abc"}, "print('started')")
    assert process.returncode != 0
    assert "started" not in process.stdout
    assert (
        "ImproperlyConfigured: environment variable NOTIFIER_BATCH_SIZE='abc' is not a valid "
        "int: expected a whole number"
    ) in process.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NOTIFIER_RETRY_DELAY": "fast"}, "NOTIFIER_RETRY_DELAY='fast' is not a valid float"),
        ({"NOTIFIER_RETRY_JITTER": "nan"}, "expected a finite number"),
        ({"NOTIFIER_RETRY_BACKOFF": "inf"}, "expected a finite number"),
        ({"NOTIFIER_SWEEP_CHUNK": "1.5"}, "NOTIFIER_SWEEP_CHUNK='1.5' is not a valid int"),
        ({"NOTIFIER_DEBUG_SEND": "maybe"}, "NOTIFIER_DEBUG_SEND='maybe' is not a valid bool"),
        ({"NOTIFIER_CHANNELS": "[1]"}, "NOTIFIER_CHANNELS='[1]' is not a valid dict"),
        ({"NOTIFIER_EVENTS": "{"}, "NOTIFIER_EVENTS='{' is not a valid dict"),
        ({"NOTIFIER_BATCHSIZE": "100"}, "unknown environment variable(s) NOTIFIER_BATCHSIZE"),
    ],
)
def test_invalid_environment_values_are_refused_by_name(env, message):
    with pytest.raises(ImproperlyConfigured) as raised:
        options_from_environment(env)
    assert message in str(raised.value)


def test_environment_values_are_typed():
    assert options_from_environment(
        {
            "NOTIFIER_BATCH_SIZE": " 50 ",
            "NOTIFIER_RETRY_DELAY": "2.5",
            "NOTIFIER_DEBUG_SEND": "True",
            "NOTIFIER_QUEUE": "mail",
            "NOTIFIER_LOG_LEVEL": "DEBUG",  # read by settings.py itself, not an option
            "PATH": "/usr/bin",
        }
    ) == {"BATCH_SIZE": 50, "RETRY_DELAY": 2.5, "DEBUG_SEND": True, "QUEUE": "mail"}


def test_options_follow_override_settings(settings):
    settings.NOTIFIER = {**settings.NOTIFIER, "RETRY_BACKOFF": 3, "LINK_MAX_AGE": "60"}
    assert (app_settings.RETRY_BACKOFF, app_settings.LINK_MAX_AGE) == (3.0, 60)
    assert channel_settings.UNSUBSCRIBE_MAILTO == ""
    settings.NOTIFIER = {**settings.NOTIFIER, "EMAIL_DOMAIN": "mail.shop.example"}
    assert channel_settings.EMAIL_DOMAIN == "mail.shop.example"


# --- nobody reads settings.NOTIFIER but conf.py ------------------------------------------------

#: Files that define the setting (settings modules) or are its readers (the conf modules).
ALLOWED = {
    "campaigns/conf.py",
    "channels/conf.py",
    "notifier_site/settings.py",
    "notifier_site/test_settings.py",
    # Reads its own setting, NOTIFIER_SECRET_KEYS (the keys of channel secrets), not NOTIFIER.
    "channels/secrets.py",
}


def notifier_reads(path) -> list[str]:
    """Places in a module that read the NOTIFIER setting or a NOTIFIER_ variable directly."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "NOTIFIER":
            found.append(f"line {node.lineno}: .NOTIFIER")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value == "NOTIFIER" or node.value.startswith("NOTIFIER_"):
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and any(a.name == "NOTIFIER" for a in node.names):
            found.append(f"line {node.lineno}: import of NOTIFIER")
    return found


def test_no_code_reads_the_notifier_setting_outside_conf():
    offenders = {}
    for package in ("campaigns", "channels", "notifier_site"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in ALLOWED and (found := notifier_reads(path)):
                offenders[relative] = found
    assert offenders == {}


def test_the_reader_check_finds_a_direct_read(tmp_path):
    module = tmp_path / "sneaky.py"
    module.write_text(
        "from django.conf import settings\n"
        "import os\n"
        "a = settings.NOTIFIER['BATCH_SIZE']\n"
        "b = getattr(settings, 'NOTIFIER', {})\n"
        "c = os.environ.get('NOTIFIER_BATCH_SIZE')\n"
    )
    assert len(notifier_reads(module)) == 3
