// The instructor's page: the wall's cards, each with "hide" and "block this phone"; pause and resume
// uploads; change the room's code. Every text a sender wrote goes in with textContent.
import { joinRoom } from "./room.js";

const $ = (id) => document.getElementById(id);
let paused = false;

async function act(action, id) {
  const response = await fetch("/api/moderate", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({action, id}),
  });
  const answer = await response.json().catch(() => ({error: `error ${response.status}`}));
  $("status").textContent = response.ok ? `done: ${action}` : answer.error;
  if (response.ok && !answer.code) show(answer);
  return response.ok ? answer : null;
}

function show(summary) {
  paused = summary.paused;
  $("pause").textContent = paused ? "Resume uploads" : "Pause uploads";
  const items = summary.hidden.map((id) => {
    const item = document.createElement("li");
    const again = document.createElement("button");
    again.type = "button";
    again.textContent = `show ${id} again`;
    again.addEventListener("click", () => act("show", id));
    item.append(again);
    return item;
  });
  $("hidden").replaceChildren(...items);
}

function addCard(card) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = card.id;
  node.querySelector(".thumb").src = card.thumb;
  node.querySelector(".learner").textContent = card.learner || "someone";
  node.querySelector(".filename").textContent = card.filename;
  node.querySelector(".hide").addEventListener("click", () => act("hide", card.id));
  node.querySelector(".block").addEventListener("click", () => act("block", card.id));
  $("cards").querySelector(`[data-id="${CSS.escape(card.id)}"]`)?.remove();
  $("cards").prepend(node);
}

// The board: a row per learner, hands first, then silent labs, then by progress; polled every few seconds.
const BOARD_SECONDS = 2;
const CELL = {done: "✓", tried: "…", untouched: "·"};

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 90 ? `${seconds} s ago` : `${Math.round(seconds / 60)} min ago`;
}

function statusText(row) {
  if (row.hand) {
    const minutes = Math.floor(row.hand.waiting_s / 60);
    return `hand up ${minutes ? `${minutes} min` : `${row.hand.waiting_s} s`}${row.hand.note ? `: ${row.hand.note}` : ""}`;
  }
  if (row.status === "silent") return `silent: no heartbeat for ${ago(row.heard_s_ago).replace(" ago", "")}`;
  if (row.status === "not started") return "not started";
  const kernels = row.notebooks.map((n) => n.kernel).filter((k) => k !== "idle");
  const restarted = row.restarts ? `kernel restarted ${row.restarts}×` : "";
  return [restarted, kernels.join(", ")].filter(Boolean).join("; ") || "working";
}

function boardRow(row, exercises) {
  const tr = document.createElement("tr");
  tr.className = row.status;
  tr.dataset.learner = row.learner;
  const cell = (text, className = "") => {
    const td = document.createElement("td");
    td.textContent = text;
    td.className = className;
    tr.append(td);
    return td;
  };
  cell(row.learner, "learner");
  const status = cell(statusText(row), "status");
  if (row.hand) {
    const answered = document.createElement("button");
    answered.type = "button";
    answered.className = "answered";
    answered.textContent = "answered";
    answered.addEventListener("click", () => decide({answered: row.learner}));
    status.append(" ", answered);
  }
  exercises.forEach((exercise) => cell(CELL[row.exercises[exercise]], `cell ${row.exercises[exercise]}`));
  cell(row.photos);
  cell(row.votes);
  cell(row.challenge === null ? "–" : `${Math.round(row.challenge * 100)}%`);
  cell(ago(row.active_s_ago));
  return tr;
}

function showBoard(board) {
  const head = ["learner", "status", ...board.exercises, "photos", "votes", "challenge", "last activity"];
  $("board-head").replaceChildren(...head.map((name) => Object.assign(document.createElement("th"), {textContent: name})));
  $("board-rows").replaceChildren(...board.rows.map((row) => boardRow(row, board.exercises)));
  const hands = board.rows.filter((row) => row.hand).length;
  const silent = board.rows.filter((row) => row.status === "silent").length;
  const done = board.exercises.map((exercise) => `${exercise}: ${board.done[exercise]} of ${board.learners}`);
  $("board-summary").textContent = `${hands} hand(s) up · ${silent} silent · ${done.join(" · ")}`;
  $("share").checked = board.shown;
}

async function decide(body) {
  const response = await fetch("/api/board", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({error: `error ${response.status}`}));
  if (response.ok) showBoard(answer); else $("status").textContent = answer.error;
}

async function refreshBoard() {
  const response = await fetch("/api/board").catch(() => null);
  if (response && response.ok) showBoard(await response.json());
}

async function start() {
  $("desk").hidden = false;
  show(await (await fetch("/api/moderation")).json());
  $("pause").addEventListener("click", () => act(paused ? "resume" : "pause"));
  $("share").addEventListener("change", () => decide({shown: $("share").checked}));
  refreshBoard();
  setInterval(refreshBoard, BOARD_SECONDS * 1000);
  $("rotate").addEventListener("click", async () => {
    if (!confirm("Every phone will have to join again with the new code. Change it?")) return;
    const answer = await act("rotate");
    if (answer) $("new-code").textContent = `New code ${answer.code}: the projector's QR code shows it now. Phones: ${answer.upload}`;
  });
  const events = new EventSource("/api/events");
  events.addEventListener("snapshot", (event) => {
    $("cards").replaceChildren();
    JSON.parse(event.data).cards.forEach(addCard);
  });
  events.addEventListener("card", (event) => addCard(JSON.parse(event.data)));
  events.addEventListener("hide", async (event) => {
    $("cards").querySelector(`[data-id="${CSS.escape(JSON.parse(event.data).id)}"]`)?.remove();
    show(await (await fetch("/api/moderation")).json());
  });
  events.addEventListener("paused", async () => show(await (await fetch("/api/moderation")).json()));
}

await joinRoom($("join"), $("join-error"), "key");
await start();
