/** The console's stylesheet: system fonts, no external resources; contrast ≥ 4.5:1 in both schemes. */
export const CONSOLE_CSS = String.raw`:root {
  --bg: #ffffff; --fg: #1b1f24; --muted: #555e68; --line: #d0d7de; --panel: #f6f8fa;
  --accent: #0b4f8a; --accent-fg: #ffffff; --danger: #a4161a; --ok: #1a7f37; --focus: #b35c00;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.45;
  color: var(--fg); background: var(--bg);
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #0f1419; --fg: #e6edf3; --muted: #a3adb8; --line: #39424c; --panel: #161c23;
    --accent: #5aa9f0; --accent-fg: #0f1419; --danger: #ff8a8a; --ok: #56d364; --focus: #ffb86b; }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; }
a { color: var(--accent); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; overflow-wrap: anywhere; }
h1 { font-size: 1.5rem; margin: .2rem 0 .4rem; }
h2 { font-size: 1.1rem; margin: 1rem 0 .4rem; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.vh { position: absolute !important; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.skip { position: absolute; left: -999px; top: 0; background: var(--accent); color: var(--accent-fg); padding: .5rem 1rem; z-index: 10; }
.skip:focus { left: .5rem; }
.top nav { min-width: 0; max-width: 100%; }
.top { display: flex; flex-wrap: wrap; align-items: center; gap: .4rem 1rem; padding: .5rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
.brand { display: flex; align-items: center; gap: .5rem; font-weight: 700; }
.model { margin: 0; color: var(--muted); font-size: .9rem; flex: 1; }
nav ul { display: flex; gap: .25rem; list-style: none; margin: 0; padding: 0; overflow-x: auto; }
nav a { display: block; padding: .45rem .75rem; border-radius: 6px; text-decoration: none; color: var(--fg); white-space: nowrap; }
nav a[aria-current="page"] { background: var(--accent); color: var(--accent-fg); }
nav a:hover { text-decoration: underline; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
main:focus { outline: none; }
.lead { color: var(--muted); margin-top: 0; max-width: 70ch; }
.muted { color: var(--muted); }
.small { font-size: .85rem; }
.row { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: end; margin: .6rem 0; }
label { display: inline-flex; flex-direction: column; gap: .15rem; font-size: .9rem; }
label.check { flex-direction: row; align-items: center; gap: .4rem; }
input, select, textarea { font: inherit; color: var(--fg); background: var(--bg); border: 1px solid var(--muted); border-radius: 6px; padding: .35rem .5rem; min-height: 2.25rem; }
textarea { width: 100%; }
.btn { font: inherit; display: inline-flex; align-items: center; justify-content: center; min-height: 2.25rem; padding: .35rem .9rem;
  border: 1px solid var(--accent); border-radius: 6px; background: var(--bg); color: var(--accent); cursor: pointer; text-align: center; }
.btn.primary { background: var(--accent); color: var(--accent-fg); }
.btn.danger { border-color: var(--danger); color: var(--danger); }
.btn.small { min-height: 1.9rem; padding: .15rem .55rem; font-size: .85rem; }
.btn:disabled { opacity: .5; cursor: default; }
input.vh:focus-visible + label { outline: 3px solid var(--focus); outline-offset: 2px; }
button.link { font: inherit; background: none; border: 0; padding: 0; color: var(--accent); text-decoration: underline; cursor: pointer; }
.drop { display: flex; flex-wrap: wrap; align-items: center; gap: .6rem; padding: 1.2rem; border: 2px dashed var(--muted); border-radius: 10px; background: var(--panel); }
.drop.over { border-color: var(--accent); background: color-mix(in srgb, var(--accent) 10%, var(--bg)); }
.drop-hint { color: var(--muted); }
.status { min-height: 1.4em; margin: .4rem 0; }
.status.error, .error { color: var(--danger); }
.status.ok { color: var(--ok); }
.answer { display: flex; flex-wrap: wrap; gap: 1rem 2rem; align-items: flex-start; }
.answer .muted { flex-basis: 100%; margin: 0; }
.query { margin: 0; text-align: center; }
.query img { width: 140px; height: 140px; object-fit: contain; image-rendering: pixelated; border: 1px solid var(--line); border-radius: 8px; background: #000; }
.query figcaption { color: var(--muted); font-size: .85rem; }
.preds { display: flex; flex-wrap: wrap; gap: .5rem 2rem; flex: 1; min-width: 240px; }
.preds > div { min-width: 250px; flex: 1; max-width: 360px; }
.preds h2 { margin-top: 0; }
.bars { list-style: none; padding: 0; margin: 0; }
.bars li { display: grid; grid-template-columns: 7.5rem minmax(4rem, 1fr) 3.5rem; gap: .5rem; align-items: center; margin: .2rem 0; }
.bars li:first-child .bar-label { font-weight: 700; }
.bar { height: .7rem; background: var(--line); border-radius: 4px; overflow: hidden; }
.bar .fill { display: block; height: 100%; background: var(--accent); }
.bar-value { text-align: right; font-variant-numeric: tabular-nums; }
.grid { list-style: none; padding: 0; margin: .5rem 0; display: grid; grid-template-columns: repeat(auto-fill, minmax(112px, 1fr)); gap: .6rem; }
.grid.gallery { grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); }
.card { display: flex; flex-direction: column; align-items: center; gap: .15rem; width: 100%; padding: .45rem; border: 1px solid var(--line); border-radius: 8px; background: var(--panel); color: var(--fg); font: inherit; font-size: .85rem; cursor: pointer; }
li.card { cursor: default; }
button.card:hover { border-color: var(--accent); }
.thumb { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated; background: #000; border-radius: 4px; }
.card .label { font-weight: 600; }
.card .score { font-variant-numeric: tabular-nums; color: var(--muted); }
.card .id, .card .meta { color: var(--muted); font-size: .75rem; max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card .actions { display: flex; gap: .3rem; margin-top: .2rem; }
.badge { display: inline-block; margin-left: .4rem; padding: 0 .4rem; border-radius: 999px; border: 1px solid var(--muted); font-size: .75rem; color: var(--muted); }
.panel { border: 1px solid var(--line); border-radius: 10px; padding: .6rem 1rem; margin: .8rem 0; background: var(--panel); }
.panel summary { cursor: pointer; font-weight: 600; min-height: 1.8rem; }
#add-form { display: flex; flex-wrap: wrap; gap: .6rem 1rem; align-items: end; margin-top: .5rem; }
#add-form .wide { flex-basis: 100%; }
#add-form p { margin: 0; flex-basis: 100%; }
.pager { display: flex; gap: 1rem; align-items: center; justify-content: center; margin: 1rem 0; }
.map-wrap { position: relative; border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
#map { display: block; width: 100%; height: auto; touch-action: manipulation; }
.map-bg { fill: var(--bg); }
.pt { stroke: var(--bg); stroke-width: 1; cursor: pointer; opacity: .9; }
.pt:hover, .pt:focus { stroke: var(--fg); stroke-width: 2.5; opacity: 1; outline: none; }
.pt.dim { opacity: .12; }
.tip { position: absolute; pointer-events: none; display: flex; flex-direction: column; align-items: center; gap: .1rem; padding: .35rem; width: 120px; background: var(--bg); border: 1px solid var(--fg); border-radius: 8px; font-size: .8rem; box-shadow: 0 2px 8px rgb(0 0 0 / .3); }
.tip .thumb { width: 80px; height: 80px; }
.tip .id { color: var(--muted); font-size: .7rem; max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.legend { list-style: none; display: flex; flex-wrap: wrap; gap: .3rem .6rem; padding: 0; }
.legend-item { font: inherit; font-size: .85rem; display: inline-flex; align-items: center; gap: .35rem; padding: .2rem .5rem; border: 1px solid var(--line); border-radius: 999px; background: var(--bg); color: var(--fg); cursor: pointer; min-height: 2rem; }
.legend-item[aria-pressed="true"] { border-color: var(--fg); font-weight: 700; }
.swatch { width: .9rem; height: .9rem; border-radius: 50%; display: inline-block; }
.cols { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 0 1rem; }
#retrain-form { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: .5rem .8rem; align-content: start; }
#retrain-form h2, #retrain-form .check, #retrain-form .status, #retrain-form button { grid-column: 1 / -1; }
#retrain-form button { justify-self: start; }
.state { font-weight: 700; }
.state.succeeded, .state.serving { color: var(--ok); }
.state.failed, .state.cancelled, .state.rejected { color: var(--danger); }
.state.running, .state.loading { color: var(--accent); }
progress { width: 100%; height: 1rem; }
.stats { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .8rem; margin: .5rem 0; font-variant-numeric: tabular-nums; }
.stats dt { color: var(--muted); }
.stats dd { margin: 0; }
.loss { width: 100%; max-width: 420px; height: auto; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); }
.loss-line { fill: none; stroke: var(--accent); stroke-width: 1.5; }
.loss-text { fill: var(--muted); font-size: 10px; }
pre { white-space: pre-wrap; font-size: .75rem; max-height: 14rem; overflow: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 800; }
@media (max-width: 600px) {
  main { padding: .6rem; }
  .top { padding: .4rem .6rem; }
  .model { flex-basis: 100%; order: 3; }
  .top nav { flex-basis: 100%; order: 2; }
  nav a { padding: .45rem .55rem; }
  .grid { grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)); }
  .thumb { width: 72px; height: 72px; }
  .bars li { grid-template-columns: 6.5rem 1fr 3rem; }
}
`;
