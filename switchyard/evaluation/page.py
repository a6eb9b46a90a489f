"""The rating page: one static HTML document; its script reads and writes through the review API.

Item text is put in with ``textContent`` only, so a prediction can never inject markup.
"""

from __future__ import annotations

import html
import json
from string import Template

PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Review $title</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:860px;margin:2em auto;padding:0 1em;color:#222}
.item{border:1px solid #ccc;border-radius:6px;padding:.8em 1em;margin:1em 0}
.label{color:#666;font-size:12px;text-transform:uppercase;margin-top:.5em}
.pred{background:#f3f6ff;padding:.4em .6em;border-radius:4px;white-space:pre-wrap}
img{max-width:320px;display:block;margin:.4em 0}
#status{font-weight:600;margin:1em 0}
</style></head>
<body>
<h1>Rate the predictions</h1>
<p id="instructions"></p>
<p><label>API key <input id="key" type="password" autocomplete="off"></label>
<label>Your name <input id="rater" required></label>
<button id="load">Load items</button></p>
<form id="form"><div id="items"></div><button id="submit" type="submit" disabled>Submit ratings</button></form>
<div id="status"></div>
<script>
const REVIEW = $review;
const base = "/eval/reviews/" + encodeURIComponent(REVIEW);
const $$ = (id) => document.getElementById(id);
$$("key").value = sessionStorage.getItem("switchyard-key") || "";
function headers() {
  const key = $$("key").value; sessionStorage.setItem("switchyard-key", key);
  const h = {"Content-Type": "application/json"}; if (key) h["X-API-Key"] = key; return h;
}
function field(parent, label, value) {
  if (value === undefined || value === null) return;
  const l = document.createElement("div"); l.className = "label"; l.textContent = label; parent.appendChild(l);
  const v = document.createElement("div"); v.textContent = Array.isArray(value) ? value.join("  |  ") : value;
  parent.appendChild(v); return v;
}
async function load() {
  const r = await fetch(base + "/items", {headers: headers()});
  const body = await r.json();
  if (!r.ok) { $$("status").textContent = "error: " + (body.error ? body.error.message : r.status); return; }
  const spec = body.review.spec;
  $$("instructions").textContent =
    spec.instructions + " (" + spec.scale_min + " = worst, " + spec.scale_max + " = best)";
  const box = $$("items"); box.textContent = "";
  for (const item of body.data) {
    const div = document.createElement("div"); div.className = "item"; div.dataset.id = item.id;
    field(div, "item", item.id);
    field(div, "prompt", item.prompt || item.question);
    if (item.image && item.image.startsWith("data:image/")) {
      const img = document.createElement("img"); img.src = item.image; img.alt = "item image"; div.appendChild(img);
    }
    field(div, "prediction", item.prediction || "").className = "pred";
    field(div, "references", item.references || item.answers);
    const select = document.createElement("select"); select.name = item.id; select.required = true;
    select.appendChild(new Option("score…", ""));
    for (let s = spec.scale_min; s <= spec.scale_max; s++) select.appendChild(new Option(String(s), String(s)));
    const l = document.createElement("div"); l.className = "label"; l.textContent = "your score";
    div.appendChild(l); div.appendChild(select); box.appendChild(div);
  }
  $$("submit").disabled = false;
  $$("status").textContent =
    body.review.status + ": " + body.review.items_complete + "/" + body.review.items + " items fully rated";
}
async function submit(event) {
  event.preventDefault();
  const ratings = [...document.querySelectorAll("#items select")].map(s => ({item_id: s.name, score: Number(s.value)}));
  const r = await fetch(base + "/ratings", {method: "POST", headers: headers(),
    body: JSON.stringify({rater: $$("rater").value, ratings})});
  const body = await r.json();
  if (!r.ok) { $$("status").textContent = "error: " + (body.error ? body.error.message : r.status); return; }
  let text = "saved. review " + body.status + ": " + body.items_complete + "/" + body.items + " items fully rated";
  if (body.agreement && body.agreement.krippendorff_alpha !== null)
    text += "; Krippendorff's alpha " + body.agreement.krippendorff_alpha.toFixed(3);
  $$("status").textContent = text;
}
$$("load").addEventListener("click", load);
$$("form").addEventListener("submit", submit);
</script></body></html>
""")


def render(review_id: str) -> str:
    # json.dumps makes a JS string literal; "</" is escaped so the id cannot close the script element.
    literal = json.dumps(review_id).replace("</", "<\\/")
    return PAGE.substitute(title=html.escape(review_id), review=literal)
