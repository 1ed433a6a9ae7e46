// The projector's page: cards arrive as server-sent events, newest first, never more than the room's
// card count. Every text a sender wrote goes in with textContent: it is shown, never run.
import { agreementText, joinRoom, verdictText } from "./room.js";

const $ = (id) => document.getElementById(id);
let maxCards = 8;

function percent(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`;
}

function renderCard(card) {
  const node = $("card-template").content.firstElementChild.cloneNode(true);
  node.dataset.id = card.id;
  node.classList.add(card.agree ? "agree" : "disagree");
  node.querySelector(".thumb").src = card.thumb;
  node.querySelector(".thumb").alt = `photo sent by ${card.learner || "someone"}`;
  node.querySelector(".learner").textContent = card.learner || "someone";
  node.querySelector(".filename").textContent = card.filename;
  node.querySelector(".quick").textContent = verdictText("quick", card.quick);
  node.querySelector(".pretrained").textContent = verdictText("pretrained", card.pretrained);
  node.querySelector(".agreement").textContent = agreementText(card.agree);
  node.querySelector(".versions").textContent = `models ${card.quick.version} · ${card.pretrained.version}`;
  return node;
}

function addCard(card) {
  const cards = $("cards");
  cards.querySelector(`[data-id="${CSS.escape(card.id)}"]`)?.remove();
  cards.prepend(renderCard(card));
  while (cards.children.length > maxCards) cards.lastElementChild.remove();
  $("empty").hidden = cards.children.length > 0;
}

function showStats(stats) {
  $("photos").textContent = stats.photos;
  $("agreement").textContent = percent(stats.agreement);
  $("accuracy-quick").textContent = percent(stats.accuracy.quick);
  $("accuracy-pretrained").textContent = percent(stats.accuracy.pretrained);
  const judged = stats.labelled === 1 ? "the 1 photo" : `the ${stats.labelled} photos`;
  $("labelled").textContent = stats.labelled ? `accuracy on ${judged} the room has judged right or wrong` : "";
  const versions = stats.versions || {};
  $("versions").textContent = versions.quick ? `serving: quick ${versions.quick}, pretrained ${versions.pretrained}` : "";
  showHistory(stats.by_version);
}

// Each model's accuracy on the photos the room judged, version by version in the order they served: after
// a retraining the new version's line starts, so the room sees whether its corrections helped.
function showHistory(byVersion) {
  const rows = [];
  for (const model of ["pretrained", "quick"]) {
    const versions = (byVersion || {})[model] || [];
    if (!versions.some((item) => item.labelled)) continue;
    const row = document.createElement("p");
    const name = document.createElement("strong");
    name.textContent = `${model}, version by version:`;
    row.append(name);
    versions.forEach((item, index) => {
      const score = document.createElement("span");
      score.className = "version-score";
      const judged = item.labelled ? `${percent(item.accuracy)} right of ${item.labelled}` : "none judged yet";
      score.textContent = `${index ? "→ " : ""}${item.version}: ${judged}`;
      row.append(" ", score);
    });
    rows.push(row);
  }
  $("history").replaceChildren(...rows);
}

// The room's challenge: the best submission of each learner, best first, and the pretrained model's score
// on the same photos as a dashed line to beat, at its place in the order. Hidden where no challenge runs.
const LEADERS_SHOWN = 8;  // the board sits in the projector's header: the top of the room, and a count

function leaderRow(row, index) {
  const item = document.createElement("li");
  item.value = index + 1;  // the place: the line to beat between rows takes none
  const name = document.createElement("strong");
  name.textContent = row.learner;
  const score = document.createElement("span");
  score.className = "accuracy";
  score.textContent = percent(row.accuracy);
  const when = document.createElement("span");
  when.className = "when";
  const at = new Date(row.submitted_at).toLocaleTimeString();
  when.textContent = `at ${at}, ${row.submissions} submission${row.submissions === 1 ? "" : "s"}`;
  item.append(name, " ", score, " ", when);
  return item;
}

function showLeaderboard(board) {
  $("leaderboard").hidden = !board;
  if (!board) return;
  $("challenge-photos").textContent = board.photos;
  const items = board.rows.slice(0, LEADERS_SHOWN).map(leaderRow);
  const line = board.baseline.pretrained;
  if (line !== undefined) {
    const beat = document.createElement("li");
    beat.className = "line-to-beat";
    beat.textContent = `pretrained model: ${percent(line)} (the line to beat)`;
    const below = board.rows.findIndex((row) => row.accuracy <= line);
    items.splice(below === -1 ? items.length : below, 0, beat);
  }
  if (board.rows.length > LEADERS_SHOWN) {
    const more = document.createElement("li");
    more.className = "more";
    more.textContent = `and ${board.rows.length - LEADERS_SHOWN} more`;
    items.push(more);
  }
  $("leaders").replaceChildren(...items);
  $("refusals").textContent = board.refusals.length ? `not scored: ${board.refusals.join("; ")}` : "";
}

// The room's progress without a name, while the instructor shows it: "1.1: 31 of 50" with a bar each.
async function showProgress() {
  const answer = await fetch("/api/progress").then((r) => r.json()).catch(() => ({shown: false}));
  $("room-progress").hidden = !answer.shown;
  if (!answer.shown) return;
  $("progress-bars").replaceChildren(...answer.exercises.map((exercise) => {
    const item = document.createElement("li");
    const bar = document.createElement("progress");
    bar.max = answer.learners || 1;
    bar.value = answer.done[exercise];
    item.append(`${exercise}: ${answer.done[exercise]} of ${answer.learners} `, bar);
    return item;
  }));
}

function showPaused(isPaused) {
  $("paused").hidden = !isPaused;
}

async function start() {
  const room = await (await fetch("/api/room")).json();
  maxCards = room.cards;
  $("upload-url").textContent = room.upload;
  $("qr-image").src = "/api/qr.svg";
  $("board").hidden = false;
  const events = new EventSource("/api/events");
  events.addEventListener("snapshot", (event) => {
    const snapshot = JSON.parse(event.data);
    showPaused(snapshot.paused);
    $("cards").replaceChildren();
    snapshot.cards.forEach(addCard);
    $("empty").hidden = snapshot.cards.length > 0;
    showStats(snapshot.stats);
    showLeaderboard(snapshot.leaderboard);
    $("connection").textContent = "";
  });
  events.addEventListener("card", (event) => addCard(JSON.parse(event.data)));
  events.addEventListener("stats", (event) => showStats(JSON.parse(event.data)));
  events.addEventListener("leaderboard", (event) => showLeaderboard(JSON.parse(event.data)));
  // The moderator's decisions: a photo off every projector at once; uploads paused; a new room code
  // (never sent here: the QR code is fetched again, and shows it); a photo shown again (a fresh snapshot).
  events.addEventListener("hide", (event) => {
    $("cards").querySelector(`[data-id="${CSS.escape(JSON.parse(event.data).id)}"]`)?.remove();
    $("empty").hidden = $("cards").children.length > 0;
  });
  events.addEventListener("paused", (event) => showPaused(JSON.parse(event.data).paused));
  events.addEventListener("code", () => { $("qr-image").src = `/api/qr.svg?at=${Date.now()}`; });
  events.addEventListener("show", () => { events.close(); start(); });
  events.onerror = () => { $("connection").textContent = "reconnecting…"; };
  if (!progressTimer) progressTimer = setInterval(showProgress, PROGRESS_SECONDS * 1000);
  showProgress();
}

const PROGRESS_SECONDS = 5;
let progressTimer = null;

await joinRoom($("join"), $("join-error"));
await start();
