// Bedside central station page: plain JS, no build step, no CDN (docs/station.md).
// The server pushes a snapshot, then frames with the tiles that changed, the alarm list and the
// station audio state. Times are the station's UTC epoch seconds; ages are computed here, and a
// chair (or the whole page) whose data stop arriving is shown OFFLINE, never as normal.
"use strict";

const S = {
  tiles: new Map(),       // id -> tile data
  els: new Map(),         // id -> tile element
  order: [],
  alarms: [],
  audio: null,
  offset: 0,              // station time - local time (s)
  staleAfter: 5,
  lastMsg: 0,             // local time of the last WebSocket message (s)
  connected: false,
  pending: new Set(),
  listDirty: true,
  frames: 0,
  detail: null,
};
const LINK_SILENT_S = 3;  // no frame or tick for this long: the station link is lost
const PRIO_MARK = { high: "!!!", medium: "!!", low: "!" };
const STATE_TEXT = { active: "active", audio_paused: "audio paused", latched: "latched",
  latched_acknowledged: "latched, acknowledged" };
const $ = (id) => document.getElementById(id);
const nowLocal = () => Date.now() / 1000;
const now = () => nowLocal() + S.offset;

function ageText(t) {
  if (t === null || t === undefined) return "—";
  const a = Math.max(0, Math.floor(now() - t));
  if (a < 120) return a + " s";
  if (a < 7200) return Math.floor(a / 60) + " min";
  return Math.floor(a / 3600) + " h " + (Math.floor(a / 60) % 60) + " min";
}
function durText(s) {
  if (s === null || s === undefined) return "—";
  const neg = s < 0; s = Math.abs(Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
  const txt = h ? `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`
                : `${m}:${String(sec).padStart(2, "0")}`;
  return (neg ? "-" : "") + txt;
}
const num = (v) => (v === null || v === undefined ? "—" : String(Math.round(v)));

// --- connection -----------------------------------------------------------------------------
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  ws.onopen = () => { S.connected = true; };
  ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
  ws.onclose = () => { S.connected = false; setTimeout(connect, 1000); };
  ws.onerror = () => { try { ws.close(); } catch (e) { /* closed already */ } };
}

function onMessage(m) {
  S.lastMsg = nowLocal();
  if (typeof m.t === "number") S.offset = m.t - nowLocal();
  if (m.type === "snapshot") {
    S.staleAfter = m.stale_after_s || S.staleAfter;
    S.order = m.order;
    S.tiles.clear();
    for (const t of m.tiles) S.tiles.set(t.id, t);
    buildGrid();
    everySecond();
  } else if (m.type === "frame") {
    for (const t of m.tiles || []) {
      if (!S.tiles.has(t.id)) S.order.push(t.id);
      S.tiles.set(t.id, t);
      S.pending.add(t.id);
    }
    if (m.removed) {
      for (const id of m.removed) S.tiles.delete(id);
      S.order = S.order.filter((id) => S.tiles.has(id));
      buildGrid();
    } else if (S.order.some((id) => !S.els.has(id))) buildGrid();
  }
  if (m.alarms) { S.alarms = m.alarms; S.listDirty = true; }
  if (m.audio) { S.audio = m.audio; Audio.follow(); renderAudio(); }
  S.frames += 1;
  schedule();
}

let rafPending = false;
function schedule() {
  if (rafPending) return;
  rafPending = true;
  requestAnimationFrame(() => {
    rafPending = false;
    for (const id of S.pending) renderTile(id);
    S.pending.clear();
    if (S.listDirty) renderList();
  });
}

// --- tiles ----------------------------------------------------------------------------------
function layout() {
  const n = Math.max(1, S.order.length);
  const grid = $("grid");
  const w = grid.clientWidth || 1300, h = grid.clientHeight || 900;
  let best = 1, bestSize = 0;
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const tw = w / cols, th = h / rows;
    const size = Math.min(tw / 1.45, th);  // tiles about 1.45 wide per 1 high
    if (size > bestSize) { bestSize = size; best = cols; }
  }
  const rows = Math.ceil(n / best);
  document.documentElement.style.setProperty("--cols", best);
  document.documentElement.style.setProperty("--rows", rows);
  const th = h / rows;
  document.documentElement.style.setProperty("--tile-font", Math.max(7, Math.min(22, th / 11)) + "px");
}

function buildGrid() {
  const grid = $("grid");
  grid.textContent = "";
  S.els.clear();
  for (const id of S.order) {
    const el = document.createElement("div");
    el.className = "tile normal";
    el.dataset.chair = id;
    el.setAttribute("data-testid", "tile");
    el.innerHTML = `
      <div class="tech-flag" title="technical alarm"></div>
      <div class="head"><span class="name"></span><span class="badge"></span></div>
      <div class="phase"></div>
      <div class="vitals">
        <div class="v spo2"><span class="lab">SpO2 %</span><span class="num">—</span><span class="age"></span></div>
        <div class="v pr"><span class="lab">PR /min</span><span class="num">—</span><span class="age"></span></div>
        <div class="v nibp"><span class="lab">NIBP mmHg</span><span class="num nibpv">—</span><span class="age"></span></div>
      </div>
      <div class="line session"></div>
      <div class="line check"></div>
      <div class="top"></div>
      <div class="offline-label">OFFLINE</div>`;
    el.addEventListener("click", () => openDetail(id));
    grid.appendChild(el);
    S.els.set(id, el);
  }
  layout();
  for (const id of S.order) renderTile(id);
  S.listDirty = true;
}

function tileOffline(t) {
  if (!S.connected || nowLocal() - S.lastMsg > LINK_SILENT_S) return "STATION LINK LOST";
  if (t.offline) return t.link !== "live" ? `OFFLINE (${t.link})` : "NO DATA";
  if (t.last_rx === null || now() - t.last_rx > S.staleAfter) return "NO DATA";
  return "";
}

function renderTile(id) {
  const t = S.tiles.get(id), el = S.els.get(id);
  if (!t || !el) return;
  const off = tileOffline(t);
  const colour = off ? "offline" : t.colour;
  const tech = !off && t.alarms.some((a) => a.kind === "technical");
  el.className = `tile ${colour}` + (tech ? " has-tech" : "");
  el.dataset.colour = colour;
  el.querySelector(".name").textContent = t.label;
  const badge = el.querySelector(".badge");
  badge.textContent = off ? "NO DATA" : (PRIO_MARK[t.priority] || "OK");
  const ses = t.session;
  const phase = (ses && ses.phase) || t.phase;
  const phaseEl = el.querySelector(".phase");
  phaseEl.textContent = phase
    ? phase + (ses && ses.phase_since ? " · " + durText(now() - ses.phase_since) : "")
      + (ses && ses.patient ? " · " + ses.patient : "")
    : "—";
  const v = (sel) => el.querySelector(sel);
  v(".spo2 .num").textContent = off ? "—" : num(t.spo2);
  v(".pr .num").textContent = off ? "—" : num(t.pr);
  const spo2At = t.spo2 !== null ? t.oxi_rx : t.spo2_valid_at;
  v(".spo2 .age").textContent = t.spo2 !== null || t.spo2_valid_at ? ageText(spo2At) : "—";
  v(".pr .age").textContent = t.pr !== null ? ageText(t.oxi_rx) : "—";
  const n = t.nibp;
  v(".nibpv").textContent = n && n.sys !== null ? `${num(n.sys)}/${num(n.dia)}` : "—";
  v(".nibp .age").textContent = n ? ageText(n.taken_at) + (n.map !== null ? ` (${num(n.map)})` : "") : "—";
  const infusing = ses && ses.infusion_since && !ses.stopped_at;
  v(".session").innerHTML = "";
  v(".session").append(...kv(infusing ? "infusion" : "since stop",
    infusing ? durText(now() - ses.infusion_since) : (ses && ses.stopped_at ? durText(now() - ses.stopped_at) : "—")),
    ...kv(" dose", ses && ses.dose ? `${ses.dose.rate} ${ses.dose.units || ""}` : "—"));
  let due = "—";
  if (ses && ses.check_due_at) {
    const left = ses.check_due_at - now();
    due = left >= 0 ? "in " + durText(left) : "OVERDUE " + durText(-left);
  }
  v(".check").innerHTML = "";
  v(".check").append(...kv("next check", due), ...kv(" score", ses && ses.last_score !== null && ses.last_score !== undefined ? String(ses.last_score) : "—"));
  const top = t.alarms.find((a) => a.condition !== "NO_DATA");
  v(".top").textContent = off ? `${off} · last data ${ageText(t.last_rx)}`
    : top ? `${top.text}${top.value_text ? " " + top.value_text : ""}` : (t.bedside_audio && t.bedside_audio.off ? "BEDSIDE AUDIO OFF" : "");
  v(".offline-label").textContent = off || "OFFLINE";
}

function kv(k, val) {
  const a = document.createElement("span"); a.className = "k"; a.textContent = k + " ";
  const b = document.createElement("span"); b.textContent = val;
  return [a, b];
}

// --- alarm list -----------------------------------------------------------------------------
function renderList() {
  S.listDirty = false;
  const body = $("alarms").querySelector("tbody");
  const rows = [];
  const lost = !S.connected || nowLocal() - S.lastMsg > LINK_SILENT_S;
  const list = lost ? [{ chair: "", label: "ALL", condition: "STATION_LINK_LOST", priority: "medium",
    kind: "technical", text: "STATION LINK LOST", value_text: "data not current", state: "active",
    onset: S.lastMsg ? S.lastMsg + S.offset : null, stale: false }, ...S.alarms] : S.alarms;
  for (const a of list) {
    const tr = document.createElement("tr");
    tr.className = a.priority + (a.kind === "technical" && a.priority !== "high" ? " tech" : "") + (a.stale || lost ? " stale" : "");
    tr.dataset.chair = a.chair; tr.dataset.condition = a.condition; tr.dataset.priority = a.priority;
    const cells = [PRIO_MARK[a.priority] || "", a.label, a.text, a.value_text || "",
      (STATE_TEXT[a.state] || a.state) + (a.stale && a.condition !== "NO_DATA" ? " (last known)" : ""), ageText(a.onset)];
    cells.forEach((c, i) => { const td = document.createElement("td"); td.textContent = c; if (i === 0) td.className = "prio"; tr.appendChild(td); });
    if (a.chair) tr.addEventListener("click", () => openDetail(a.chair));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  $("alarm-count").textContent = list.length ? `(${list.length})` : "";
}

// --- station audio (WebAudio, IEC 60601-1-8 burst patterns approximated) ----------------------
const PATTERNS = {
  // [pulse start offsets in s], pulse length, interburst (from the end of the last pulse)
  high: { starts: [0, 0.25, 0.5, 1.0, 1.25, 2.1, 2.35, 2.6, 3.1, 3.35], td: 0.15, gap: 5.0, ramp: 0.02 },
  medium: { starts: [0, 0.4, 0.8], td: 0.2, gap: 6.0, ramp: 0.03 },
  low: { starts: [0, 0.4], td: 0.2, gap: 20.0, ramp: 0.03 },
};
const Audio = {
  ctx: null, playing: "none", timer: null, bursts: 0, lastBurst: 0,
  ensure() {
    if (this.ctx) return this.ctx;
    const C = window.AudioContext || window.webkitAudioContext;
    if (!C) return null;
    this.ctx = new C();
    return this.ctx;
  },
  follow() {
    const want = S.audio ? S.audio.play : "none";
    const lost = !S.connected || nowLocal() - S.lastMsg > LINK_SILENT_S;
    // a page that lost the station must not go quiet, unless the station audio is off (a
    // named user's decision) or within its pause
    const muted = S.audio && (S.audio.mode === "off"
      || (S.audio.paused_until !== null && S.audio.paused_until > now()));
    const target = lost && !muted ? "medium" : want;
    if (target === this.playing) return;
    this.playing = target;
    clearTimeout(this.timer);
    if (target !== "none") this.burst();
  },
  burst() {
    const p = PATTERNS[this.playing];
    if (!p) return;
    const ctx = this.ensure();
    if (ctx && ctx.state === "running") {
      const t0 = ctx.currentTime + 0.05;
      for (const s of p.starts) this.pulse(ctx, t0 + s, p.td, p.ramp);
    }
    this.bursts += 1; this.lastBurst = nowLocal();
    const len = p.starts[p.starts.length - 1] + p.td;
    this.timer = setTimeout(() => this.burst(), (len + p.gap) * 1000);
  },
  pulse(ctx, t, td, ramp) {
    const osc = ctx.createOscillator(), g = ctx.createGain();
    osc.type = "square"; osc.frequency.value = 600;  // f0 as the bedside sounder, harmonics included
    g.gain.setValueAtTime(0, t);
    g.gain.linearRampToValueAtTime(0.25, t + ramp);
    g.gain.setValueAtTime(0.25, t + td - ramp);
    g.gain.linearRampToValueAtTime(0, t + td);
    osc.connect(g).connect(ctx.destination);
    osc.start(t); osc.stop(t + td + 0.01);
  },
  state() { return { playing: this.playing, bursts: this.bursts, ctx: this.ctx ? this.ctx.state : "none" }; },
};

function renderAudio() {
  const a = S.audio, el = $("audio-state");
  if (!a) return;
  el.className = "audio-state " + a.mode;
  if (a.mode === "off") el.textContent = `STATION AUDIO OFF by ${a.off_by}` + (a.off_reason ? ` (${a.off_reason})` : "");
  else if (a.mode === "paused") el.textContent = `station audio paused ${durText(a.paused_until - now())}`;
  else if (Audio.playing !== a.play) el.textContent = `station link lost · sounding ${Audio.playing}`;
  else el.textContent = "station audio on" + (a.priority !== "none" ? ` · sounding ${a.priority}` : "");
  $("audio-off").hidden = a.mode === "off";
  $("audio-on").hidden = a.mode !== "off";
  const ctx = Audio.ctx;
  $("audio-enable").hidden = !(ctx === null || ctx.state !== "running");
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || (data.detail && JSON.stringify(data.detail)) || r.statusText);
  return data;
}

let dialogAction = null;
function openDialog(kind) {
  dialogAction = kind;
  $("dialog-title").textContent = kind === "off" ? "Station audio off" : "Station audio on";
  $("dialog-text").textContent = kind === "off"
    ? "The station will not sound until someone switches it on again. The bedside devices keep alarming. Your name is recorded."
    : "Your name is recorded.";
  $("dialog-reason-row").hidden = kind !== "off";
  $("dialog-error").textContent = "";
  $("dialog").hidden = false;
  $("dialog-user").focus();
}

// --- chair detail: trends and alarm history from the record file ---------------------------------
async function openDetail(id) {
  S.detail = id;
  const t = S.tiles.get(id);
  $("detail-title").textContent = `${t ? t.label : id}: trends and alarm history`;
  $("detail").hidden = false;
  await loadDetail();
}

const DETAIL_REFRESH_S = 5;  // an open chair's trends follow the record file
let detailLoaded = 0;
async function loadDetail() {
  const id = S.detail; if (!id) return;
  detailLoaded = nowLocal();
  const minutes = $("detail-minutes").value;
  $("detail-error").textContent = "";
  try {
    const r = await fetch(`/api/chairs/${encodeURIComponent(id)}/history?minutes=${minutes}`);
    const h = await r.json();
    if (!r.ok) throw new Error(h.error || r.statusText);
    drawTrend($("trend-oxi"), h, [["spo2", "#7fd8ff", 50, 100, "SpO2 %"], ["pr", "#8dff9d", 30, 180, "Pulse /min"]], h.vitals, true);
    drawTrend($("trend-nibp"), h, [["sys", "#ffb36b", 40, 220, "SYS"], ["dia", "#ffd9a8", 40, 220, "DIA"], ["map", "#ffffff", 40, 220, "MAP"]], h.nibp, false);
    const body = $("detail-alarms").querySelector("tbody");
    body.replaceChildren(...h.alarms.map((a) => {
      const tr = document.createElement("tr");
      tr.className = (a.priority || "") + (a.kind === "technical" && a.priority !== "high" ? " tech" : "");
      for (const c of [new Date(a.t * 1000).toLocaleTimeString(), a.condition, a.event, a.state, a.priority,
        a.value === null ? "" : `${a.value}${a.limit === null ? "" : " / " + a.limit}`]) {
        const td = document.createElement("td"); td.textContent = c ?? ""; tr.appendChild(td);
      }
      return tr;
    }));
  } catch (e) {
    $("detail-error").textContent = "cannot load the history: " + e.message;
  }
}

function drawTrend(cv, h, series, pts, lines) {
  const g = cv.getContext("2d"), W = cv.width, H = cv.height, L = 60, R = 10, T = 10, B = 24;
  g.fillStyle = "#0c1014"; g.fillRect(0, 0, W, H);
  const x = (t) => L + (t - h.from) / (h.to - h.from) * (W - L - R);
  g.strokeStyle = "#33404a"; g.fillStyle = "#8a949c"; g.font = "12px sans-serif";
  for (let i = 0; i <= 6; i++) {
    const t = h.from + i * (h.to - h.from) / 6, xx = x(t);
    g.beginPath(); g.moveTo(xx, T); g.lineTo(xx, H - B); g.stroke();
    g.fillText(new Date(t * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), xx - 16, H - 6);
  }
  series.forEach(([key, colour, lo, hi, name], k) => {
    const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
    g.strokeStyle = colour; g.fillStyle = colour; g.lineWidth = 2;
    g.fillText(name, 4, T + 12 + 14 * k);
    g.beginPath(); let on = false, prevT = null;
    for (const p of pts) {
      if (p[key] === null || p[key] === undefined) { on = false; continue; }
      const xx = x(p.t), yy = y(p[key]);
      if (lines) {
        if (!on || (prevT !== null && p.t - prevT > Math.max(5, 3 * h.bucket_s))) g.moveTo(xx, yy); else g.lineTo(xx, yy);
        on = true; prevT = p.t;
      } else { g.fillRect(xx - 3, yy - 3, 6, 6); }
    }
    if (lines) g.stroke();
  });
}

// --- wiring ---------------------------------------------------------------------------------
function everySecond() {
  const lost = !S.connected || nowLocal() - S.lastMsg > LINK_SILENT_S;
  const conn = $("conn");
  conn.className = "conn " + (lost ? "bad" : "ok");
  conn.textContent = lost ? "STATION LINK LOST: data not current" : `live · ${S.order.length} chairs`;
  $("clock").textContent = new Date(now() * 1000).toLocaleTimeString();
  for (const id of S.order) renderTile(id);
  renderList();
  renderAudio();
  Audio.follow();
  if (S.detail && nowLocal() - detailLoaded >= DETAIL_REFRESH_S) loadDetail();
  if (SES.chair && SES.view && !$("session").hidden) renderSessionState();
}

window.addEventListener("resize", () => { layout(); });
$("audio-enable").addEventListener("click", async () => {
  const ctx = Audio.ensure(); if (ctx) await ctx.resume(); renderAudio();
});
document.addEventListener("click", () => { const ctx = Audio.ensure(); if (ctx && ctx.state !== "running") ctx.resume(); }, { once: true });
$("audio-pause").addEventListener("click", async () => {
  try { S.audio = await post("/api/audio/pause", {}); renderAudio(); Audio.follow(); } catch (e) { alert(e.message); }
});
$("audio-off").addEventListener("click", () => openDialog("off"));
$("audio-on").addEventListener("click", () => openDialog("on"));
$("dialog-cancel").addEventListener("click", () => { $("dialog").hidden = true; });
$("dialog-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = $("dialog-user").value, reason = $("dialog-reason").value;
  try {
    S.audio = await post(dialogAction === "off" ? "/api/audio/off" : "/api/audio/on",
      dialogAction === "off" ? { user, reason } : { user });
    $("dialog").hidden = true; renderAudio(); Audio.follow();
  } catch (e) { $("dialog-error").textContent = e.message; }
});
$("detail-close").addEventListener("click", () => { $("detail").hidden = true; S.detail = null; });
$("detail-minutes").addEventListener("change", loadDetail);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { $("detail").hidden = true; $("dialog").hidden = true; $("session").hidden = true; S.detail = null; SES.chair = null; SES.op = null; } });

// The station's own parts (record file, MQTT broker, HL7 receiver): problems in a red line.
async function loadStatus() {
  try {
    const r = await fetch("/api/status", { cache: "no-store" });
    if (!r.ok) return;
    const st = await r.json();
    const el = $("system"), hidden = !st.problems.length;
    el.textContent = st.problems.join(" · ");
    if (el.hidden !== hidden) { el.hidden = hidden; layout(); }
  } catch (e) { /* a station that does not answer is shown by the WebSocket check */ }
}

// --- infusion-session forms (docs/station.md "Session forms") -----------------------------------
// Every step goes to POST /api/chairs/{id}/session/{op} with the operator's name; the station
// checks the form, the host session services apply the clinic's rules and the device decides.
const OP_TITLES = [["open", "Open"], ["screen", "Screening"], ["baseline", "Baseline"],
  ["start", "Start infusion"], ["dose", "Dose"], ["o2", "O2"], ["check", "Sedation score"],
  ["stop", "Stop infusion"], ["discharge", "Discharge criteria"], ["close", "Escort & close"],
  ["cancel", "Cancel session"]];
const SES = { chair: null, forms: null, op: null, view: null, loadedAt: 0 };
const BY_KEY = "bedside-station-operator";

async function openSession() {
  const id = S.detail; if (!id) return;
  SES.chair = id;
  const t = S.tiles.get(id);
  $("session-title").textContent = `${t ? t.label : id}: infusion session`;
  $("session-by").value = localStorage.getItem(BY_KEY) || "";
  $("session-result").textContent = ""; $("session-result").className = "sresult";
  $("session").hidden = false;
  try {
    if (!SES.forms) {
      const r = await fetch("/api/session/forms");
      SES.forms = await r.json();
      if (!r.ok) throw new Error(SES.forms.error || r.statusText);
    }
    await loadSession();
  } catch (e) { showResult(false, "cannot load the session: " + e.message); }
}

async function loadSession() {
  const r = await fetch(`/api/chairs/${encodeURIComponent(SES.chair)}/session`);
  const v = await r.json();
  if (!r.ok) throw new Error(v.error || r.statusText);
  SES.view = v; SES.loadedAt = nowLocal();
  renderSessionState();
  if (!SES.op) selectOp(suggestOp(v.state.phase));
  else renderOps();
}

function suggestOp(phase) {
  return { idle: "open", closed: "open", screening: "screen", baseline: "baseline",
    infusion: "check", recovery: "discharge", discharge_ready: "close" }[phase] || "open";
}

function renderSessionState() {
  const st0 = (SES.view && SES.view.state) || {}, el = $("session-state");
  // the device's seconds as of loading, moved on by the time since (redrawn every second)
  const dt = Math.max(0, nowLocal() - (SES.loadedAt || nowLocal())), st = Object.assign({}, st0);
  const on = (k, sign) => { if (typeof st0[k] === "number") st[k] = st0[k] + sign * dt; };
  on("phase_s", 1); on("infusion_s", 1); on("recovery_s", 1); on("check_due_s", -1);
  if (st0.last_check && typeof st0.last_check.ago_s === "number") st.last_check = Object.assign({}, st0.last_check, { ago_s: st0.last_check.ago_s + dt });
  const since = (s) => (s === null || s === undefined ? "—" : durText(s));
  const due = st.check_due_s === null || st.check_due_s === undefined ? "—"
    : st.check_due_s >= 0 ? "in " + durText(st.check_due_s) : "OVERDUE " + durText(-st.check_due_s);
  const lc = st.last_check;
  el.replaceChildren(
    ...kv("phase", (st.phase || "—") + (st.phase_s !== undefined && st.phase_s !== null ? " · " + durText(st.phase_s) : "")),
    ...kv("patient", st.patient ? `${st.patient} (day ${st.course_day}/${st.course_total})` : "—"),
    ...kv("infusion", since(st.infusion_s)), ...kv("since stop", since(st.recovery_s)),
    ...kv("dose", st.dose ? `${st.dose.rate} ${st.dose.units}` : "—"),
    ...kv("O2", st.o2 && st.o2.on ? `${st.o2.flow} L/min` : "off"),
    ...kv("next check", due),
    ...kv("last score", lc ? (lc.score === null ? "check done" : `MOAA/S ${lc.score}`) + ` · ${durText(lc.ago_s)} ago` : "—"),
    ...kv("baseline", st.baseline ? `${st.baseline.sys}/${st.baseline.dia} PR ${st.baseline.pr}` : (st.phase === "baseline" ? `${st.baseline_readings || 0} readings` : "—")));
  const body = $("session-steps").querySelector("tbody");
  body.replaceChildren(...(SES.view.steps || []).slice().reverse().map((s) => {
    const tr = document.createElement("tr");
    for (const c of [new Date(s.t * 1000).toLocaleTimeString(), s.op, s.by, s.outcome,
      `${s.phase_before || ""} → ${s.phase_after || ""}`, s.error || s.note || ""]) {
      const td = document.createElement("td"); td.textContent = c ?? ""; tr.appendChild(td);
    }
    return tr;
  }));
}

function renderOps() {
  const phase = SES.view && SES.view.state.phase, allowed = (SES.forms && SES.forms.allowed) || {};
  $("session-ops").replaceChildren(...OP_TITLES.map(([op, title]) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = title; b.dataset.op = op;
    b.setAttribute("data-testid", "session-op-" + op);
    const ok = !allowed[op] || allowed[op].includes(phase);
    b.className = "btn" + (op === SES.op ? " sel" : "") + (ok ? "" : " off");
    b.title = ok ? "" : `not in phase ${phase} (the rules will refuse it)`;
    b.addEventListener("click", () => selectOp(op));
    return b;
  }));
}

// field: [name, kind, label, options]; kinds: text, int, bool (checkbox), select, yesno, item
function field(name, kind, label, opts) {
  const lab = document.createElement("label");
  lab.append(document.createTextNode(label));
  let input;
  if (kind === "select" || kind === "item") {
    input = document.createElement("select");
    for (const [v, t] of opts) { const o = document.createElement("option"); o.value = v; o.textContent = t; input.append(o); }
  } else if (kind === "yesno") {
    input = document.createElement("select");
    for (const [v, t] of [["", "— answer —"], ["no", "no"], ["yes", "yes"]]) { const o = document.createElement("option"); o.value = v; o.textContent = t; input.append(o); }
  } else {
    input = document.createElement("input");
    input.type = kind === "bool" ? "checkbox" : kind === "int" ? "number" : "text";
    if (kind === "int") input.step = "1";
    if (opts && opts.value !== undefined) input.value = opts.value;
    if (opts && opts.max) input.maxLength = opts.max;
  }
  input.name = name; input.dataset.kind = kind;
  lab.append(input);
  return lab;
}

function selectOp(op) {
  SES.op = op;
  renderOps();
  const f = SES.forms, form = $("session-form");
  const items = [];
  const scoreOpts = (levels) => [[2, `2 · ${levels[0]}`], [1, `1 · ${levels[1]}`], [0, `0 · ${levels[2]}`]];
  if (op === "open") items.push(field("patient", "text", "Patient id (pseudonymous)", { max: 32 }),
    field("course_day", "int", "Course day"), field("course_total", "int", "Course length (infusions)"));
  if (op === "screen") {
    const fs = document.createElement("fieldset");
    fs.innerHTML = "<legend>Relative contraindications (each: yes or no)</legend>";
    for (const [k, q] of Object.entries(f.contraindications)) fs.append(field("answers." + k, "yesno", q));
    items.push(fs, field("bp_sys", "int", "Resting systolic BP (mmHg)"), field("bp_dia", "int", "Resting diastolic BP (mmHg)"),
      field("note", "text", "Note", { max: 500 }), field("override_by", "text", "Override: clinician (any finding)", { max: 32 }),
      field("override_reason", "text", "Override: reason", { max: 200 }));
  }
  if (op === "cancel") items.push(field("reason", "text", "Reason", { max: 32 }));
  if (op === "dose") items.push(field("rate", "int", "Rate (whole number)"), field("units", "text", "Units", { value: "mg/h", max: 16 }),
    field("reason", "select", "Reason", f.dose_reasons.map((r) => [r, r.replace("_", " ")])), field("note", "text", "Note", { max: 500 }));
  if (op === "o2") items.push(field("on", "select", "Oxygen", [["true", "on"], ["false", "off"]]), field("flow", "int", "Flow (L/min, when on)"));
  if (op === "check") {
    const variant = "A";
    items.push(field("moaas", "select", "MOAA/S", [["", "— check done, no score —"],
      ...Object.entries(f.moaas[variant]).sort((a, b) => b[0] - a[0]).map(([k, w]) => [k, `${k} · ${w}`])]),
      field("variant", "select", "MOAA/S variant", Object.keys(f.moaas).map((k) => [k, k])),
      field("rass", "select", "RASS", [["", "—"], ...Array.from({ length: f.rass[1] - f.rass[0] + 1 }, (_, i) => f.rass[1] - i).map((n) => [n, (n > 0 ? "+" : "") + n])]),
      field("dissociation", "select", "Dissociation", [["", "—"], ...f.levels.map((l) => [l, l])]),
      field("nausea", "select", "Nausea", [["", "—"], ...f.levels.map((l) => [l, l])]),
      field("pain", "int", "Pain score 0-10"), field("note", "text", "Note", { max: 500 }));
  }
  if (op === "discharge") {
    for (const [form, title] of [["aldrete", "Modified Aldrete"], ["padss", "PADSS"]]) {
      const fs = document.createElement("fieldset");
      fs.innerHTML = `<legend>${title}</legend>`;
      for (const [k, it] of Object.entries(f[form])) fs.append(field(form + "." + k, "item", it.title, scoreOpts(it.levels)));
      if (form === "padss") { const n = document.createElement("div"); n.textContent = `${f.padss_bleeding[1]}: n/a (2 by rule)`; fs.append(n); }
      items.push(fs);
    }
    const hints = (SES.view && SES.view.hints) || [];
    if (hints.length) {
      const h = document.createElement("div"); h.style.gridColumn = "1 / -1";
      h.textContent = "Suggested from the device data (confirm at the bedside): " + hints.map((x) => `${x.form} ${x.item} ${x.points} (${x.why})`).join("; ");
      items.push(h);
    }
  }
  if (op === "close") items.push(field("escort", "text", "Escort's name", { max: 32 }), field("relationship", "text", "Relationship", { max: 32 }),
    field("advice", "bool", "No-driving advice given"));
  const sub = document.createElement("div"); sub.className = "submit";
  const buttons = op === "baseline" ? [["repeat", "Repeat NIBP reading"], ["accept", "Accept baseline"]] : [["", OP_TITLES.find((x) => x[0] === op)[1]]];
  for (const [action, title] of buttons) {
    const b = document.createElement("button"); b.type = "submit"; b.className = "btn warn"; b.textContent = title;
    b.dataset.action = action; b.setAttribute("data-testid", "session-submit" + (action ? "-" + action : ""));
    sub.append(b);
  }
  items.push(sub);
  form.replaceChildren(...items);
}

function formBody(form, action) {
  const body = {};
  for (const el of form.querySelectorAll("[name]")) {
    const kind = el.dataset.kind, raw = kind === "bool" ? el.checked : el.value.trim();
    let v = raw;
    if (kind === "bool") v = raw;
    else if (raw === "") continue;                       // left empty: not sent (optional)
    else if (kind === "int" || kind === "item" || (el.name === "moaas" || el.name === "rass")) {
      if (!/^-?\d+$/.test(raw)) throw new Error(`${el.name}: a whole number, please`);
      v = parseInt(raw, 10);
    } else if (kind === "yesno") v = raw === "yes";
    else if (el.name === "on") v = raw === "true";
    const [a, b] = el.name.split(".");
    if (b) { body[a] = body[a] || {}; body[a][b] = v; } else body[a] = v;
  }
  if (action) body.action = action;
  if (SES.op === "screen") body.answers = body.answers || {};
  return body;
}

function showResult(ok, text, criteria) {
  const el = $("session-result");
  el.className = "sresult " + (ok ? "ok" : "refused");
  el.replaceChildren(document.createTextNode(text));
  if (criteria && criteria.length) {
    const t = document.createElement("table"); t.className = "alarms";
    t.innerHTML = "<thead><tr><th>Criterion</th><th></th><th>Value</th><th>Needed</th><th>Judged by</th></tr></thead>";
    const tb = document.createElement("tbody");
    for (const c of criteria) {
      const tr = document.createElement("tr");
      for (const [v, cls] of [[c.name, ""], [c.ok ? "holds" : "FAILS", c.ok ? "holds" : "fails"],
        [c.value === null || c.value === undefined ? "" : JSON.stringify(c.value), ""], [c.need ?? "", ""], [c.source, ""]]) {
        const td = document.createElement("td"); td.textContent = v; if (cls) td.className = cls; tr.append(td);
      }
      tb.append(tr);
    }
    t.append(tb); el.append(t);
  }
}

$("session-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const by = $("session-by").value.trim();
  if (!by) { showResult(false, "Enter your name (operator) first: every step is recorded with it."); $("session-by").focus(); return; }
  localStorage.setItem(BY_KEY, by);
  const action = ev.submitter ? ev.submitter.dataset.action : "";
  let body;
  try { body = formBody($("session-form"), action); } catch (e) { showResult(false, e.message); return; }
  body.by = by;
  showResult(true, "sending…");
  const r = await fetch(`/api/chairs/${encodeURIComponent(SES.chair)}/session/${SES.op}`, { method: "POST",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const res = await r.json().catch(() => ({ error: r.statusText }));
  if (r.ok) {
    const warn = res.warnings && res.warnings.length ? " · " + res.warnings.join("; ") : "";
    showResult(true, `${SES.op}: done by ${by} · phase ${res.phase_after}${warn}`, res.criteria);
  } else {
    const who = res.refused_by === "device" ? "the bedside device refused" : res.refused_by === "host" ? "the clinic's rules refused" : "not done";
    const fails = res.failing && res.failing.length ? ` · still failing: ${res.failing.join(", ")}` : "";
    showResult(false, `${SES.op}: ${who}: ${res.error || r.statusText}${fails}`, res.criteria);
  }
  try { await loadSession(); } catch (e) { /* the result stays shown */ }
});
$("session-open").addEventListener("click", openSession);
$("session-close").addEventListener("click", () => { $("session").hidden = true; SES.chair = null; SES.op = null; });

window.station = { S, audio: () => Audio.state() };  // for the browser tests
connect();
setInterval(everySecond, 1000);
setInterval(loadStatus, 5000);
loadStatus();
