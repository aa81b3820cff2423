"""The Node.js reference store (reference_store/node) is certified like the Go seed, and quotes like Go.

It is what a JavaScript author would write from docs/process-protocol.md: standard
library only, int64-exact JSON parsing, Go's %q.  Tests skip only where ``node`` is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources

import pytest

from tests.go_oracle import quote_vectors
from tests.test_zoo import ROOT, certify

FACTORY = "aether_conformance.process_store:from_environment"
NODE = shutil.which("node")
STORE = ROOT / "reference_store" / "node" / "store.js"
SHIPPED = resources.files("aether_conformance").joinpath("go_quote_vectors.json")

needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: the Node.js reference store cannot run")


def _node(script: str, stdin: str = "") -> str:
    completed = subprocess.run([NODE, "-e", script, str(STORE)], input=stdin, capture_output=True, text=True,
                               timeout=120, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_the_shipped_quote_vectors_are_what_go_recorded():
    assert SHIPPED.read_text(encoding="utf-8") == quote_vectors.render()


@needs_node
def test_the_node_store_is_conformant(tmp_path):
    code, report, output = certify(FACTORY, tmp_path, env={"AETHER_STORE_COMMAND": f"{NODE} {STORE}"})
    failed = [r["id"] for r in report["requirements"] if r["outcome"] == "failed"]
    assert code == 0 and report["conformant"] and not failed, f"{failed}\n{output[-3000:]}"
    assert report["implementation"] == {"protocol": "aether-store/1", "command": f"{NODE} {STORE}",
                                        "name": "reference_store/node", "version": "0.1.0"}


@needs_node
def test_the_node_store_quotes_every_vector_as_go_does():
    shipped = json.loads(SHIPPED.read_text(encoding="utf-8"))
    unicode = _node("process.stdout.write(process.versions.unicode)")
    if not shipped["unicode"].startswith(unicode):
        pytest.skip(f"node's Unicode {unicode} is not Go's {shipped['unicode']}: characters assigned in between differ")
    script = """
      const { goQuote } = require(process.argv[1]);
      const shipped = JSON.parse(require('fs').readFileSync(0, 'utf8'));
      const wrong = shipped.vectors.filter(([cp, go]) => goQuote(String.fromCodePoint(cp)) !== go)
        .concat(shipped.samples.filter((s) => goQuote(s.input) !== s.go).map((s) => [s.input, s.go]));
      process.stdout.write(JSON.stringify({ checked: shipped.vectors.length + shipped.samples.length, wrong }));
    """
    outcome = json.loads(_node(script, SHIPPED.read_text(encoding="utf-8")))
    assert outcome["checked"] > 1000 and outcome["wrong"] == [], outcome["wrong"][:20]


@needs_node
def test_the_node_store_keeps_int64_and_json_exact():
    lines = [
        '{"id": 9223372036854775807, "big": -9223372036854775808, "f": 2.5, "e": 1e-7, "s": "\\u00e9\\ud83e\\udd80\\n"}',
        '{"__proto__": {"a": [[], {}, null, true, false]}, "1": "k", "": 12345678901234567890}',
    ]
    script = """
      const { parseJSON, toJSON } = require(process.argv[1]);
      const out = require('fs').readFileSync(0, 'utf8').trim().split('\\n').map((l) => toJSON(parseJSON(l)));
      process.stdout.write(out.join('\\n'));
    """
    written = _node(script, "\n".join(lines)).split("\n")
    assert [json.loads(line) for line in written] == [json.loads(line) for line in lines]
    assert "9223372036854775807" in written[0] and "-9223372036854775808" in written[0]
