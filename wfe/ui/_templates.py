"""The pages, as Jinja templates kept in this module (autoescaped: every value from a store is text).

Kept as Python strings, not files, so the package needs no data files; HTML lines are as long as they read best.
"""
# ruff: noqa: E501, RUF001

from __future__ import annotations

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{% block title %}wfe{% endblock %} · wfe</title>
<link rel="stylesheet" href="/static/ui.css">
{% block head %}{% endblock %}
<script src="/static/ui.js" defer></script>
</head><body>
<header class="top">
  <a class="brand" href="/runs">wfe</a>
  <a href="/runs">Runs</a>
  <a href="/compare">Compare</a>
  <form action="/artifacts" method="get" role="search">
    <input name="q" placeholder="digest or prefix (12+ hex)" aria-label="artifact digest" autocomplete="off">
  </form>
  <span class="store" title="{{ store_label }}">{{ store_label }}</span>
</header>
<main>{% block main %}{% endblock %}</main>
</body></html>
"""

MACROS = """
{% macro pill(status) -%}
{%- set c = colours.get(status, neutral) -%}
<span class="pill" data-status="{{ status }}" style="background:{{ c[0] }};color:{{ c[2] }}">{{ status }}</span>
{%- endmacro %}
{% macro badge(status) -%}
{%- set c = colours.get(run_colour(status), neutral) -%}
<span class="badge" data-run-status="{{ status }}" style="background:{{ c[0] }};color:{{ c[2] }}">{{ status }}</span>
{%- endmacro %}
{% macro digest_link(digest) -%}
<a href="/artifacts/{{ digest }}" title="{{ digest }}"><code>{{ digest[7:19] }}</code></a>
{%- endmacro %}
{% macro run_link(run_id) -%}<a href="/runs/{{ run_id }}"><code>{{ run_id }}</code></a>{%- endmacro %}
"""

RUNS = """{% extends "base.html" %}{% from "macros.html" import badge, run_link %}
{% block title %}Runs{% endblock %}
{% block main %}
<h1>Runs</h1>
<form class="filters" method="get" action="/runs">
  <label>workflow <input name="workflow" list="workflows" value="{{ workflow or '' }}" placeholder="any"></label>
  <datalist id="workflows">{% for name in workflows %}<option value="{{ name }}">{% endfor %}</datalist>
  <label>status <select name="status">
    <option value="">any</option>
    {% for s in statuses %}<option value="{{ s }}"{% if s == status %} selected{% endif %}>{{ s }}</option>{% endfor %}
  </select></label>
  <label><span>&nbsp;</span><span><input type="checkbox" name="inner" value="1"{% if inner %} checked{% endif %}>
    inner runs too</span></label>
  <button type="submit">Filter</button>
</form>
<table id="runs">
<thead><tr><th>run</th><th>workflow</th><th>started (UTC)</th><th>duration</th><th>status</th>
<th class="num">nodes</th><th class="num">ran</th><th class="num">cached</th><th class="num">failed</th></tr></thead>
<tbody>
{% for row in page.rows %}{% set s = row.summary %}
{% if s %}
<tr data-run="{{ row.run_id }}"><td>{{ run_link(row.run_id) }}</td>
<td><a href="/runs?workflow={{ s.workflow|urlencode }}">{{ s.workflow }}</a></td><td>{{ s.started|when }}</td>
<td class="num">{{ s.duration|seconds }}</td><td>{{ badge(s.status) }}</td><td class="num">{{ s.nodes }}</td>
<td class="num">{{ s.ran }}</td><td class="num">{{ s.cached }}</td><td class="num">{{ s.failed }}</td></tr>
{% else %}
<tr data-run="{{ row.run_id }}"><td><code>{{ row.run_id }}</code></td>
<td colspan="8" class="problem">unreadable record: {{ row.problem }}</td></tr>
{% endif %}
{% else %}
<tr><td colspan="9" class="note">{% if page.total %}no runs match{% else %}no runs in this store yet{% endif %}</td></tr>
{% endfor %}
</tbody></table>
<div class="pager">
  {% if before %}<a href="/runs?{{ query(before=None) }}">« newest</a>{% endif %}
  {% if page.older %}<a id="older" href="/runs?{{ query(before=page.older) }}">older »</a>{% endif %}
  <span>{{ page.rows|length }} shown · {{ page.total }} runs in the store
  {%- if page.older and page.rows|length < page_size %} · looked through {{ page.scanned }} without filling
  the page{% endif %}</span>
</div>
{% endblock %}
"""

LIVE = """{% from "macros.html" import pill, badge, digest_link %}
<div id="live" data-status="{{ status }}" data-src="/runs/{{ run.run_id }}/live">
<h1>{{ run.workflow }} {{ badge(status) }}</h1>
<div class="meta">
  <span>run <b><code>{{ run.run_id }}</code></b></span>
  <span>started <b>{{ run.started|when }}</b></span>
  <span>duration <b>{{ duration|seconds }}</b></span>
  <span>nodes <b>{{ run.nodes|length }}</b></span>
  {% for s, n in counts %}<span>{{ s }} <b>{{ n }}</b></span>{% endfor %}
  <span>cache hits <b>{{ hits }} of {{ function_nodes }}</b></span>
  {% if run.parent %}<span>inner run of <b><a href="/runs/{{ run.parent }}"><code>{{ run.parent }}</code></a></b></span>{% endif %}
  {% if rerun_of %}<span>rerun of <b><a href="/runs/{{ rerun_of }}"><code>{{ rerun_of }}</code></a></b></span>{% endif %}
</div>
{% if status == "died" %}<p class="problem">its process {{ run.owner }} is gone: this run cannot finish</p>{% endif %}
<h2>Graph</h2>
<div class="card" id="graph" data-node-base="/runs/{{ run.run_id }}/nodes/">{{ graph }}{{ legend }}</div>
<h2>Nodes</h2>
<table id="nodes"><thead><tr><th>node</th><th>function</th><th>status</th><th class="num">duration</th>
<th class="num">inputs</th><th>outputs</th><th>cache</th><th>action key</th><th>note</th></tr></thead><tbody>
{% for node_id, r in run.nodes.items() %}
<tr data-node="{{ node_id }}"><td><a href="/runs/{{ run.run_id }}/nodes/{{ node_id|urlencode }}"><b>{{ node_id }}</b></a></td>
<td>{% if r.function %}{{ r.function }} <code>{{ r.version or '' }}</code>{% else %}file{% endif %}</td>
<td>{{ pill(r.status) }}</td><td class="num">{{ r.duration|seconds }}</td><td class="num">{{ r.inputs|length }}</td>
<td>{% for a in r.outputs %}{{ a.mime }} · {{ a.size|size }} · {{ digest_link(a.digest) }}{% if not loop.last %}<br>{% endif %}{% else %}—{% endfor %}</td>
<td>{{ cache_word(r) }}</td>
<td>{% if r.action_key %}<code title="{{ r.action_key }}">{{ r.action_key[7:19] }}</code>{% else %}—{% endif %}</td>
<td>{{ r.error or '' }}</td></tr>
{% endfor %}
</tbody></table>
</div>
"""

RUN = """{% extends "base.html" %}
{% block title %}{{ run.workflow }} · {{ run.run_id }}{% endblock %}
{% block head %}{% if status == "running" %}<noscript><meta http-equiv="refresh" content="3"></noscript>{% endif %}{% endblock %}
{% block main %}
<div class="crumbs"><a href="/runs">Runs</a> › <a href="/runs?workflow={{ run.workflow|urlencode }}">{{ run.workflow }}</a></div>
{% include "live.html" %}
{% if failures %}<h2>Failures</h2>
{% for node_id, r, log in failures %}
<details open class="failure" data-node="{{ node_id }}"><summary><b>{{ node_id }}</b>: {{ r.error or 'failed' }}</summary>
{% if r.traceback %}<pre class="traceback">{{ r.traceback }}</pre>{% endif %}
{% if log %}<h3>log</h3><pre class="log">{{ log }}</pre>{% endif %}
</details>
{% endfor %}{% endif %}
<p><a class="button" href="/compare?b={{ run.run_id }}">Compare with another run</a></p>
{% endblock %}
"""

NODE = """{% extends "base.html" %}{% from "macros.html" import pill, digest_link %}
{% block title %}{{ node_id }} · {{ run.run_id }}{% endblock %}
{% block main %}
<div class="crumbs"><a href="/runs">Runs</a> › <a href="/runs/{{ run.run_id }}">{{ run.workflow }} · {{ run.run_id }}</a></div>
<h1>{{ node_id }} {{ pill(r.status) }}</h1>
<div class="card"><dl class="facts">
  <dt>function</dt><dd>{% if r.function %}<b>{{ r.function }}</b>{% if spec_ref %} <code>{{ spec_ref }}</code>{% endif %}{% else %}a file taken in{% endif %}</dd>
  {% if r.function %}<dt>version</dt><dd><code>{{ r.version }}</code></dd>{% endif %}
  <dt>duration</dt><dd>{{ r.duration|seconds }}</dd>
  {% if r.action_key %}<dt>action key</dt><dd><code>{{ r.action_key }}</code></dd>{% endif %}
  <dt>cache</dt><dd id="cache">{{ cache_word(r) }}</dd>
  {% if r.config %}<dt>config</dt><dd><code>{{ r.config }}</code></dd>{% endif %}
  {% if r.subruns %}<dt>inner runs</dt><dd>{% for s in r.subruns %}<a href="/runs/{{ s }}"><code>{{ s }}</code></a> {% endfor %}</dd>{% endif %}
</dl></div>
{% if config is not none %}<h2>Config</h2>{{ config }}{% endif %}
<h2>Why it {{ 'came from the cache' if r.status == 'cached' else r.status if r.status in ('failed', 'skipped') else 'ran' }}</h2>
<div class="card" id="explain">
{% if explanation %}{% if explanation.previous_run %}<p>compared with run <a href="/runs/{{ explanation.previous_run }}"><code>{{ explanation.previous_run }}</code></a>
 (<a href="/compare?a={{ explanation.previous_run }}&amp;b={{ run.run_id }}">compare the runs</a>)</p>{% endif %}
<ul class="reasons">{% for reason in explanation.reasons %}<li>{{ reason }}</li>{% endfor %}</ul>
{% else %}<p class="problem">{{ explain_error }}</p>{% endif %}
</div>
{% if r.error %}<h2>Error</h2><p class="problem">{{ r.error }}</p>{% if r.traceback %}<pre class="traceback">{{ r.traceback }}</pre>{% endif %}{% endif %}
{% for title, side, items in sides %}
<h2>{{ title }}</h2>
{% for a, preview, base in items %}
<div class="artifact" data-side="{{ side }}" data-mime="{{ a.mime }}">
<div class="head"><b>{{ a.name or (title[:-1] ~ ' ' ~ loop.index) }}</b><span>{{ a.mime }}</span><span>{{ a.size|size }}</span>
{{ digest_link(a.digest) }}{% if a.kind %}<span class="note">{{ a.kind }}</span>{% endif %}
<a class="download" href="{{ base }}/download">download</a></div>
{% if side == "inputs" %}<details><summary>preview</summary>{{ preview }}</details>{% else %}{{ preview }}{% endif %}
</div>
{% else %}<p class="note">none</p>{% endfor %}
{% endfor %}
{% if log is not none %}<h2>Log</h2><pre class="log">{{ log }}</pre>{% endif %}
{% endblock %}
"""

COMPARE = """{% extends "base.html" %}{% from "macros.html" import pill, badge, run_link %}
{% block title %}Compare{% endblock %}
{% block main %}
<h1>Compare two runs</h1>
<form class="filters" method="get" action="/compare">
  <label>run A <input name="a" value="{{ a_text }}" placeholder="run id, prefix or latest"></label>
  <label>run B <input name="b" value="{{ b_text }}" placeholder="run id, prefix or latest"></label>
  <button type="submit">Compare</button>
</form>
{% if error %}<div class="error-box">{{ error }}</div>{% endif %}
{% if cmp %}
<table class="pair"><thead><tr><th></th><th>run</th><th>workflow</th><th>started (UTC)</th><th>status</th></tr></thead>
<tbody><tr><td>A</td><td>{{ run_link(cmp.a.run_id) }}</td><td>{{ cmp.a.workflow }}</td><td>{{ cmp.a.started|when }}</td><td>{{ badge(cmp.a.status) }}</td></tr>
<tr><td>B</td><td>{{ run_link(cmp.b.run_id) }}</td><td>{{ cmp.b.workflow }}</td><td>{{ cmp.b.started|when }}</td><td>{{ badge(cmp.b.status) }}</td></tr></tbody></table>
<h2>{{ cmp.differing|length }} node{{ '' if cmp.differing|length == 1 else 's' }} differ</h2>
{% if cmp.differing %}
<table id="differences"><thead><tr><th>node</th><th>A</th><th>B</th><th>what changed</th><th>before (A)</th><th>after (B)</th></tr></thead><tbody>
{% for d in cmp.differing %}{% for c in d.changes %}
<tr data-node="{{ d.node_id }}" data-part="{{ c.part }}">
{% if loop.first %}<td rowspan="{{ d.changes|length }}"><b>{{ d.node_id }}</b></td>
<td rowspan="{{ d.changes|length }}">{% if d.status_a %}<a href="/runs/{{ cmp.a.run_id }}/nodes/{{ d.node_id|urlencode }}">{{ pill(d.status_a) }}</a>{% else %}—{% endif %}</td>
<td rowspan="{{ d.changes|length }}">{% if d.status_b %}<a href="/runs/{{ cmp.b.run_id }}/nodes/{{ d.node_id|urlencode }}">{{ pill(d.status_b) }}</a>{% else %}—{% endif %}</td>{% endif %}
<td>{{ c.part }}</td>
{% if c.before %}<td class="diff-before"><code title="{{ c.before }}">{{ c.before|short }}</code></td><td class="diff-after"><code title="{{ c.after }}">{{ c.after|short }}</code></td>
{% else %}<td colspan="2"><code>{{ c.after }}</code></td>{% endif %}</tr>
{% endfor %}{% endfor %}
</tbody></table>{% endif %}
<p class="note" id="same">the same action key and outputs in both: {{ cmp.same|join(', ') or 'none' }}</p>
{% endif %}
{% endblock %}
"""

ARTIFACT = """{% extends "base.html" %}{% from "macros.html" import run_link %}
{% block title %}{{ digest[7:19] }}{% endblock %}
{% block main %}
<h1>Artifact</h1>
<div class="card"><dl class="facts">
  <dt>digest</dt><dd><code id="digest">{{ digest }}</code></dd>
  <dt>size</dt><dd>{% if size is not none %}{{ size|size }} ({{ '{:,}'.format(size) }} bytes){% else %}<span class="problem">{{ missing }}</span>{% endif %}</dd>
  {% if mime %}<dt>MIME type</dt><dd>{{ mime }} <span class="note">(as the runs below record it)</span></dd>{% endif %}
  {% if size is not none %}<dt></dt><dd><a class="download" href="/artifacts/{{ digest }}/download{% if mime %}?mime={{ mime|urlencode }}{% endif %}">download</a></dd>{% endif %}
</dl></div>
{% if preview %}<h2>Preview</h2><div class="artifact">{{ preview }}</div>{% endif %}
<h2>Produced and consumed by</h2>
<table id="uses"><thead><tr><th>run</th><th>workflow</th><th>started (UTC)</th><th>node</th><th>role</th><th>MIME type</th></tr></thead><tbody>
{% for row, node_id, role, use_mime in uses %}
<tr data-role="{{ role }}"><td>{{ run_link(row.run_id) }}</td><td>{{ row.summary.workflow }}</td><td>{{ row.summary.started|when }}</td>
<td><a href="/runs/{{ row.run_id }}/nodes/{{ node_id|urlencode }}">{{ node_id }}</a></td><td>{{ role }}</td><td>{{ use_mime }}</td></tr>
{% else %}<tr><td colspan="6" class="note">no run among those looked through names it</td></tr>{% endfor %}
</tbody></table>
<p class="note">looked through {{ scanned }} of {{ total }} runs, newest first
{%- if scanned < total %} · <a href="/artifacts/{{ digest }}?scan=all">look through all of them</a>{% endif %}</p>
{% endblock %}
"""

ERROR = """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block main %}
<h1>{{ title }}</h1>
<div class="error-box" id="error">{{ message }}</div>
<p><a href="/runs">Back to the runs</a></p>
{% endblock %}
"""

TEMPLATES = {
    "base.html": BASE,
    "macros.html": MACROS,
    "runs.html": RUNS,
    "live.html": LIVE,
    "run.html": RUN,
    "node.html": NODE,
    "compare.html": COMPARE,
    "artifact.html": ARTIFACT,
    "error.html": ERROR,
}
