"""The app's stylesheet and its one small script (served from ``/static``; no build step)."""

from __future__ import annotations

CSS = """
:root{--fg:#1b1f24;--muted:#5b6168;--line:#e1e4e8;--bg:#fafbfc;--card:#fff;--accent:#0b5cad}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);margin:0;
background:var(--bg)}
header.top{background:#1f2a37;color:#fff;padding:0 24px;display:flex;align-items:center;gap:24px;height:48px}
header.top a{color:#dfe6ee;text-decoration:none;font-weight:600}
header.top a.brand{color:#fff;font-size:16px;letter-spacing:.3px}
header.top a:hover{color:#fff;text-decoration:underline}
header.top .store{margin-left:auto;color:#aab4bf;font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:45%}
header.top form{display:flex;gap:6px}
header.top input{border:0;border-radius:4px;padding:4px 8px;width:220px;font-size:13px}
main{max-width:1280px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:4px 0 4px}h2{font-size:17px;margin:28px 0 10px}h3{font-size:15px;margin:18px 0 8px}
a{color:var(--accent)}
.crumbs{color:var(--muted);font-size:13px}.crumbs a{color:var(--muted)}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;font-size:13px;vertical-align:3px}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.meta{display:flex;flex-wrap:wrap;gap:6px 28px;margin:10px 0;color:var(--muted)}
.meta b{color:var(--fg);font-weight:600}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px;overflow:auto}
.legend{display:flex;gap:16px;margin:8px 0 0;font-size:13px;color:var(--muted)}
.legend i{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;background:var(--card);font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f4f5f7;font-weight:600;white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
tr:hover td{background:#f8fafc}
code,.mono{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:#f4f5f7;padding:8px;border-radius:6px;overflow:auto;max-height:420px;font-size:12px}
details{margin:6px 0}summary{cursor:pointer}
form.filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin:10px 0 14px}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:2px}
form.filters input,form.filters select{padding:5px 8px;border:1px solid #c9ced4;border-radius:4px;font-size:13px}
button,.button{padding:5px 14px;border:1px solid #0b5cad;background:#0b5cad;color:#fff;border-radius:4px;
font-size:13px;cursor:pointer;text-decoration:none;display:inline-block}
.pager{display:flex;gap:12px;align-items:center;margin:12px 0;color:var(--muted)}
.note{color:var(--muted)}.problem{color:#a3161a}
.error-box{background:#fff4f4;border:1px solid #f1c0c0;border-radius:8px;padding:14px 16px;color:#7d1010}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;word-break:break-all}
ul.reasons{margin:6px 0;padding-left:20px}
.artifact{border:1px solid var(--line);border-radius:8px;background:var(--card);padding:10px 12px;margin:10px 0}
.artifact .head{display:flex;gap:14px;flex-wrap:wrap;align-items:baseline;margin-bottom:8px}
.table-scroll{overflow:auto;max-height:480px}
table.preview-table caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:12px;padding:4px 0}
table.preview-table th small{color:var(--muted);font-weight:400}
img.preview-image{max-width:100%;max-height:480px;border:1px solid var(--line);background:
repeating-conic-gradient(#eee 0 25%,#fff 0 50%) 0 0/16px 16px}
iframe.preview-frame{width:100%;height:420px;border:1px solid var(--line);border-radius:6px;background:#fff}
.json-tree{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.json-tree details{margin:0 0 0 14px}.json-tree>details{margin-left:0}
.json-tree .json-leaf{margin-left:14px}.json-key{color:#6f42c1}.json-string{color:#0a6b2d}
.json-null{color:#80858b}.json-count,.json-more{color:#80858b;margin-left:4px}
.diff-before{color:#a3161a}.diff-after{color:#0a6b2d}
#graph g.node{cursor:pointer}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
footer{color:#80858b;font-size:12px;margin-top:32px}
"""

# Progressive enhancement only: every page works without it. It keeps a running run's page up to date and
# makes the graph's boxes links to their nodes.
JS = """
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var node = event.target.closest && event.target.closest("g.node");
    var holder = node && node.closest("[data-node-base]");
    if (holder) {
      window.location.href = holder.dataset.nodeBase + encodeURIComponent(node.dataset.node);
    }
  });
  var live = document.getElementById("live");
  if (!live || live.dataset.status !== "running") { return; }
  function poll() {
    fetch(live.dataset.src, {credentials: "same-origin", cache: "no-store"}).then(function (response) {
      return response.ok ? response.text() : null;
    }).then(function (html) {
      if (html === null) { setTimeout(poll, 3000); return; }
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var fresh = holder.querySelector("#live");
      if (!fresh) { return; }
      if (fresh.dataset.status !== "running") { window.location.reload(); return; }
      live.innerHTML = fresh.innerHTML;
      setTimeout(poll, 1500);
    }).catch(function () { setTimeout(poll, 3000); });
  }
  setTimeout(poll, 1500);
})();
"""
