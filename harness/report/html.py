"""The leaderboard as one self-contained HTML page (`reports/index.html`): no network needed to open it.

Styles and scripts are inline; figures are linked relative to the page (they sit in `figures/` beside it).
Readers can pick a dataset, sort any table by clicking its header, and click a confusion-matrix thumbnail to see it
full size (the thumbnail is also a plain link to the PNG, so it works without scripts).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness import stats
from harness.metrics import HEADLINE_METRICS
from harness.report.model import METRIC_TITLES, VERDICT_CLASSES, VERDICT_WORDS, Section
from harness.report.model import escape as _e
from harness.report.text import (
    bayes_cells,
    ci_text,
    claim_cell,
    claim_texts,
    contamination_mark,
    contamination_texts,
    gain_text,
    method_text,
    resolution_text,
    soft_label_table,
    soft_note,
    timestamp_line,
    verdict_cell,
)

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1em}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;font-size:0.9em}
td.l,th.l{text-align:left}
th{background:#f0f0f0;cursor:pointer;user-select:none}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
tr.best td,tr.equivalent td{background:#eef6ee}
tr.unresolved td{background:repeating-linear-gradient(135deg,#fff 0 6px,#f1f1f1 6px 12px);color:#555}
td.verdict{text-align:left;white-space:nowrap}
.legend span{display:inline-block;padding:1px 6px;margin-right:6px;border:1px solid #ccc}
.note{color:#555;font-size:0.9em}
.figs img{max-width:100%;margin:4px;border:1px solid #ddd}
.thumbs a{display:inline-block;margin:4px;text-align:center;font-size:0.8em;color:#333;text-decoration:none}
.thumbs img{width:220px;border:1px solid #ddd;display:block}
#lightbox{display:none;position:fixed;inset:0;background:rgba(0,0,0,0.8);z-index:10;cursor:zoom-out;
  align-items:center;justify-content:center}
#lightbox.open{display:flex}
#lightbox img{max-width:96vw;max-height:96vh;background:white}
details{font-size:0.85em}code{font-size:0.9em}
"""

SCRIPT = """
function sortTable(th){
  const table=th.closest('table'), index=[...th.parentNode.children].indexOf(th);
  const asc=!th.classList.contains('sorted-asc');
  table.querySelectorAll('th').forEach(h=>h.classList.remove('sorted-asc','sorted-desc'));
  th.classList.add(asc?'sorted-asc':'sorted-desc');
  const rows=[...table.tBodies[0].rows];
  const key=r=>{const c=r.cells[index];const v=c.dataset.sort??c.textContent.trim();const n=parseFloat(v);
    return isNaN(n)?v:n;};
  rows.sort((a,b)=>{const x=key(a),y=key(b);return (x>y?1:x<y?-1:0)*(asc?1:-1);});
  rows.forEach(r=>table.tBodies[0].appendChild(r));
}
function pickDataset(value){
  document.querySelectorAll('section.dataset').forEach(s=>{
    s.style.display=(value==='all'||s.dataset.dataset===value)?'':'none';});
}
function enlarge(link){
  const box=document.getElementById('lightbox');
  box.querySelector('img').src=link.getAttribute('href');
  box.querySelector('img').alt=link.dataset.title;
  box.classList.add('open');
  return false;
}
document.addEventListener('DOMContentLoaded',()=>{
  document.querySelectorAll('th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
  document.getElementById('lightbox').addEventListener('click',e=>e.currentTarget.classList.remove('open'));
});
"""




def run_link(row: pd.Series, tracking_uri: str) -> str:
    """A link to the run in the MLflow UI when the tracking store is a server; otherwise the run id to look up."""
    if tracking_uri.startswith(("http://", "https://")):
        url = f"{tracking_uri.rstrip('/')}/#/experiments/{row['experiment_id']}/runs/{row['run_id']}"
        return f"<a href='{_e(url)}'>{_e(row['run_id'][:8])}</a>"
    return f"<code title='run id; open with mlflow ui'>{_e(row['run_id'][:8])}</code>"


def html_page(sections: list[Section], context: dict[str, Any], out_dir: Path) -> str:
    datasets = sorted({s.dataset for s in sections})
    options = "".join(f"<option value='{_e(d)}'>{_e(d)}</option>" for d in datasets)
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>MER leaderboard</title>",
             f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
             "<h1>MER leaderboard</h1>",
             "<p>Test scores, mean ± std over folds, with a 95 % confidence interval; configurations chosen on "
             "validation folds only. Only results of one evaluation setting share a table. Click a column header to "
             "sort, a confusion matrix to see it full size.</p>",
             "<p class='legend'>Verdict of each row against its table's best method: "
             f"<span class='equivalent'>{_e(VERDICT_WORDS[stats.EQUIVALENT])}: rank <code>1=</code>, shaded green "
             f"(the only tie)</span><span class='worse'>{_e(VERDICT_WORDS[stats.WORSE])}: plain rank</span>"
             f"<span class='unresolved' style='background:repeating-linear-gradient(135deg,#fff 0 6px,#f1f1f1 6px "
             f"12px)'>{_e(VERDICT_WORDS[stats.UNRESOLVED])}: rank with <code>?</code>, hatched</span></p>",
             f"<p><label>Dataset: <select id='dataset-select' onchange='pickDataset(this.value)'>"
             f"<option value='all'>all</option>{options}</select></label></p>"]
    for section in sections:
        parts += _section_html(section, context["tracking_uri"], out_dir)
    parts += context["robustness"]["html"]
    parts += _ranking_html(context["ranking"], out_dir)
    gain_figure = out_dir / "figures" / "fusion_gain.png"
    if gain_figure.exists():
        parts.append("<h2>Fusion gain</h2><div class='figs'>"
                     f"<img src='{_e(gain_figure.relative_to(out_dir).as_posix())}' alt='fusion gain per dataset'>"
                     "</div>")
    parts.append("<h2>Reproducibility</h2><table><tbody>")
    parts += [f"<tr><td class='l'>{_e(k)}</td><td class='l'>{_e(v)}</td></tr>"
              for k, v in context["reproducibility"].items()]
    parts.append(f"</tbody></table><p class='note'>{_e(timestamp_line())}</p>")
    parts.append("<div id='lightbox' role='dialog'><img src='' alt=''></div></body></html>")
    return "\n".join(parts)


def _section_html(section: Section, tracking_uri: str, out_dir: Path) -> list[str]:
    rows, metric = section.rows, section.metric
    parts = [f"<section class='dataset' data-dataset='{_e(section.dataset)}' id='{_e(section.slug)}'>",
             f"<h2>{_e(section.title)}</h2>",
             f"<p>Setting: {_e(section.label)}.<br>Protocol <code>{_e(rows['protocol'].iloc[0])}</code>, "
             f"{_e(rows['folds'].iloc[0])} folds, {section.n_groups} groups; ranked by {METRIC_TITLES[metric]}. "
             f"Features: <code>{_e(rows['features'].iloc[0])}</code>. Trial budget: {_e(rows['n_trials'].iloc[0])}. "
             f"Feature extraction failures: {_e(rows['feature_failures'].iloc[0])}.</p>",
             f"<p class='note'>{_e(method_text(section))}</p>"]
    resolution = resolution_text(section)
    if resolution:
        parts.append(f"<p class='resolution'>{_e(resolution)}</p>")
    gain = gain_text(section)
    if gain:
        parts.append(f"<p>{_e(gain.replace('`', ''))}</p>")
    for claim in claim_texts(section) + contamination_texts(section):
        parts.append(f"<p class='claim'>{_e(claim.replace('`', ''))}</p>")
    if section.best_published:
        parts.append(f"<p class='sota'>{_e(section.best_published.replace('`', ''))}</p>")
    if len(section.failures):
        parts.append(f"<details open><summary>Clips whose features failed ({len(section.failures)})</summary>"
                     "<table><thead><tr><th class='l'>modality</th><th class='l'>clip</th><th class='l'>stage</th>"
                     "<th class='l'>error</th></tr></thead><tbody>")
        parts += [f"<tr><td class='l'>{_e(r['modality'])}</td><td class='l'>{_e(r['clip_id'])}</td>"
                  f"<td class='l'>{_e(r['stage'])}</td><td class='l'>{_e(str(r['error'])[:300])}</td></tr>"
                  for _, r in section.failures.iterrows()]
        parts.append("</tbody></table></details>")
    headers = "".join(f"<th>{METRIC_TITLES[m]}</th>" for m in HEADLINE_METRICS)
    parts.append("<table><thead><tr><th>#</th><th class='l'>method</th><th class='l'>family</th>"
                 f"<th class='l'>modalities</th>{headers}<th>{METRIC_TITLES[metric]} 95 % CI</th>"
                 "<th>Δ vs best</th><th class='l'>verdict (Holm p)</th>"
                 "<th class='l'>paper claim (gap)</th><th>folds</th>"
                 "<th class='l'>MLflow run</th><th class='l'>config</th></tr></thead><tbody>")
    for _, row in rows.iterrows():
        cells = "".join(f"<td data-sort='{row[f'{m}_mean']:.6f}'>{row[f'{m}_mean']:.3f} ± {row[f'{m}_std']:.3f}</td>"
                        for m in HEADLINE_METRICS)
        config = json.loads(row["config"]) if row["config"] else {}
        config_html = (f"<details><summary>{len(config)} values</summary><pre>"
                       f"{_e(json.dumps(config, indent=1))}</pre></details>") if config else ""
        delta = "" if row["verdict"] == stats.BEST else _num(row["difference"], "+.3f")
        parts.append(
            f"<tr class='{VERDICT_CLASSES[row['verdict']]}' data-method='{_e(row['method'])}' "
            f"data-verdict='{_e(row['verdict'])}' title='{_e(VERDICT_WORDS[row['verdict']])}'>"
            f"<td data-sort='{row['rank']}'>{_e(row['rank_label'])}</td>"
            f"<td class='l'>{_e(row['method'] + contamination_mark(row))}</td>"
            f"<td class='l'>{_e(row['family'])}</td><td class='l'>{_e(row['modalities'])}</td>{cells}"
            f"<td>{_e(ci_text(row))}</td><td>{delta}</td>"
            f"<td class='verdict'>{_e(verdict_cell(row))}</td>"
            f"<td class='l'>{_e(claim_cell(row, section.dataset))}</td><td>{_e(row['folds'])}</td>"
            f"<td class='l'>{run_link(row, tracking_uri)}</td>"
            f"<td class='l'>{config_html}</td></tr>")
    parts.append("</tbody></table>")
    soft_titles, soft_rows = soft_label_table(section)
    if soft_titles:
        parts.append(f"<p class='note'>{_e(soft_note(section))}</p><table class='soft'><thead><tr>"
                     "<th class='l'>method</th>"
                     + "".join(f"<th>{_e(t)}</th>" for t in soft_titles) + "</tr></thead><tbody>")
        parts += [f"<tr><td class='l'>{_e(m)}</td>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"
                  for m, cells in soft_rows]
        parts.append("</tbody></table>")
    parts.append("<div class='figs'>")
    for key, caption in (("scores", "headline metric with 95 % CI"), ("per_class", "per-class F1")):
        if key in section.figures:
            parts.append(f"<img src='{_e(section.figures[key].relative_to(out_dir).as_posix())}' "
                         f"alt='{_e(section.title)}: {caption}'>")
    parts.append("</div><h3>Confusion matrices (row-normalised, counts in brackets)</h3><div class='thumbs'>")
    for _, row in rows.iterrows():
        figure = section.figures.get(f"confusion:{row['method']}")
        if figure:
            href = _e(figure.relative_to(out_dir).as_posix())  # a path built from names: escaped too
            parts.append(f"<a class='confusion' href='{href}' data-title='{_e(row['method'])}' "
                         f"onclick='return enlarge(this)'><img src='{href}' alt='confusion matrix of "
                         f"{_e(row['method'])}'>{_e(row['method'])}</a>")
    parts.append("</div></section>")
    return parts


def _num(value: Any, spec: str) -> str:
    return "" if pd.isna(value) else format(float(value), spec)


def _ranking_html(ranking: stats.CrossDatasetRanking | None, out_dir: Path) -> list[str]:
    parts = ["<section id='across-datasets'><h2>Across datasets</h2>"]
    if ranking is None:
        return [*parts, "<p>Fewer than two datasets share at least two methods: no cross-dataset ranking.</p>"
                        "</section>"]
    parts.append(f"<p>Mean rank (1 = best) over {_e(', '.join(ranking.scores.index))}, by each dataset's headline "
                 f"metric in its main setting. {_e(ranking.reason)}</p>")
    diagram = out_dir / "figures" / "critical_difference.png"
    if ranking.tested and diagram.exists():
        parts.append(f"<p>Friedman chi-square = {ranking.friedman_statistic:.3f}, p = {ranking.friedman_p:.3g}; "
                     f"Nemenyi critical difference = {ranking.critical_difference:.3f} ranks.</p><div class='figs'>"
                     f"<img src='{_e(diagram.relative_to(out_dir).as_posix())}' alt='critical-difference diagram'>"
                     "</div>")
    bayes = ("" if ranking.bayesian is None else f"<th>P({_e(ranking.reference)} better)</th>"
             "<th>P(practically equivalent)</th><th>P(method better)</th>")
    parts.append("<table><thead><tr><th class='l'>method</th><th>mean rank</th>"
                 + "".join(f"<th>{_e(d)}</th>" for d in ranking.scores.index) + bayes + "</tr></thead><tbody>")
    for method, rank in ranking.mean_ranks.items():
        scores = "".join(f"<td>{ranking.scores.loc[d, method]:.3f}</td>" for d in ranking.scores.index)
        cells = "".join(f"<td>{_e(c)}</td>" for c in bayes_cells(ranking, method))
        parts.append(f"<tr><td class='l'>{_e(method)}</td><td>{rank:.2f}</td>{scores}{cells}</tr>")
    return [*parts, "</tbody></table></section>"]
