// The ChatGateway demo page: a small chat app on /client.js (plain JavaScript, no build step).
// Served only in demo mode (demo.enabled), which also mints the development tokens it signs in
// with (POST /demo/token). Elements carry data-testid attributes for the browser tests.
import { ChatClient, compareIds } from "/client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const transport = ["websocket", "longpoll", "auto"].includes(params.get("transport")) ? params.get("transport") : "auto";

let client = null;
let me = null;
let active = null; // conversation key: "user:bob" or "group:g_1"
const conversations = new Map(); // key → {address, title, messages: Map(id → message), more, reads, unread, readSent}
const presence = new Map(); // user → "online" | "offline"
const typingUntil = new Map(); // key → {user, until}
let mediaAvailable = null;
let signingIn = false;

// MARK: Sign-in

async function mintToken(user) {
  const response = await fetch("/demo/token", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }),
  });
  const json = await response.json();
  if (!response.ok) throw new Error((json.error && json.error.message) || response.statusText);
  return json.token;
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("signin-name").value.trim();
  try {
    await signIn(name);
  } catch (error) {
    $("signin-error").textContent = String(error.message || error);
    $("signin-error").hidden = false;
  }
});

async function signIn(name) {
  if (client || signingIn) return;
  signingIn = true;
  $("signin").hidden = true;
  $("app").hidden = false;
  let token;
  try {
    token = await mintToken(name);
  } catch (error) {
    $("signin").hidden = false;
    $("app").hidden = true;
    throw error;
  } finally {
    signingIn = false;
  }
  me = name;
  sessionStorage.setItem("demo.user", name);
  client = new ChatClient({ url: location.origin, token, transport, getToken: () => mintToken(name) });
  client.on("state", showState);
  client.on("message", (message) => addMessage(message, true));
  client.on("ack", onAck);
  client.on("receipt", onReceipt);
  client.on("typing", onTyping);
  client.on("presence", onPresence);
  client.on("sync", () => { document.body.dataset.synced = String(client.curMaxSeq); });
  $("me").textContent = name;
  document.title = name + " · ChatGateway demo";
  await client.connect();
  try {
    for (const group of await client.groups()) conversation("group:" + group.id, group.name);
  } catch (_) { /* shown on the next action */ }
  renderConversations();
}

const remembered = sessionStorage.getItem("demo.user");
if (remembered) signIn(remembered).catch(() => sessionStorage.removeItem("demo.user"));

function showState(event) {
  const badge = $("transport");
  badge.textContent = event.transport || "…";
  badge.className = "badge " + event.state;
  badge.dataset.state = event.state;
  badge.title = event.state + (event.reason ? " (" + event.reason + ")" : "");
  const online = event.state === "open";
  $("message-input").disabled = !active;
  $("send").disabled = !active;
  document.body.dataset.state = event.state;
  if (!online && event.state === "reconnecting") $("status").textContent = "reconnecting in " + Math.round(event.delayMs / 100) / 10 + " s";
  else $("status").textContent = "";
}

// MARK: Conversations

function keyOf(message) {
  if (message.to.group) return "group:" + message.to.group;
  return "user:" + (message.from === me ? message.to.user : message.from);
}

function addressOf(key) {
  return key.startsWith("group:") ? { group: key.slice(6) } : { user: key.slice(5) };
}

function conversation(key, title) {
  let entry = conversations.get(key);
  if (!entry) {
    entry = { address: addressOf(key), title: title || key.replace(/^user:/, ""), messages: new Map(), more: true, loaded: false, reads: {}, unread: 0, readSent: null };
    conversations.set(key, entry);
    if (entry.address.user) client.subscribePresence([entry.address.user]).catch(() => {});
    if (entry.address.group && !title) {
      client.api("GET", "/v1/groups/" + encodeURIComponent(entry.address.group)).then((group) => {
        entry.title = group.name;
        renderConversations();
        if (active === key) $("title").textContent = group.name;
      }, () => {});
    }
  } else if (title) {
    entry.title = title;
  }
  return entry;
}

function renderConversations() {
  const list = $("conversations");
  list.replaceChildren();
  for (const [key, entry] of conversations) {
    const item = document.createElement("li");
    item.dataset.testid = "conversation";
    item.dataset.key = key;
    if (key === active) item.className = "active";
    const dot = document.createElement("span");
    dot.dataset.testid = "presence";
    if (entry.address.user) {
      const status = presence.get(entry.address.user) || "offline";
      dot.className = "dot " + status;
      dot.dataset.status = status;
      dot.title = status;
    } else {
      dot.className = "dot group";
    }
    const name = document.createElement("span");
    name.textContent = entry.title;
    item.append(dot, name);
    if (entry.unread && key !== active) {
      const badge = document.createElement("span");
      badge.className = "unread";
      badge.textContent = String(entry.unread);
      item.append(badge);
    }
    item.addEventListener("click", () => open(key));
    list.append(item);
  }
}

$("peer-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("peer").value.trim();
  if (!text) return;
  open(text.startsWith("group:") ? text : "user:" + text.replace(/^user:/, ""));
  $("peer").value = "";
});

$("group-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const members = $("group-members").value.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    const group = await client.createGroup({ name: $("group-name").value.trim(), members });
    conversation("group:" + group.id, group.name);
    open("group:" + group.id);
    $("group-form").reset();
    $("group-form").closest("details").open = false;
  } catch (error) {
    $("status").textContent = "could not create the group: " + error.message;
  }
});

async function open(key) {
  const entry = conversation(key);
  active = key;
  entry.unread = 0;
  $("title").textContent = entry.title;
  $("title").dataset.key = key;
  $("message-input").disabled = false;
  $("send").disabled = false;
  renderConversations();
  renderMessages(true);
  if (!entry.loaded) await loadOlder(entry, key);
  markRead(entry);
  $("message-input").focus();
}

async function loadOlder(entry, key) {
  const oldest = [...entry.messages.keys()].filter((id) => !id.startsWith("pending:")).sort(compareIds)[0];
  try {
    const page = await client.history(entry.address, { before: entry.loaded ? oldest : undefined, limit: 30 });
    entry.loaded = true;
    entry.more = page.more;
    Object.assign(entry.reads, page.reads || {});
    const box = $("messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const message of page.messages) addMessage(message, false);
    if (key === active) {
      renderMessages(false);
      box.scrollTop = box.scrollHeight - fromBottom;
    }
  } catch (error) {
    $("status").textContent = "history: " + error.message;
  }
}

$("older").addEventListener("click", () => { if (active) loadOlder(conversations.get(active), active); });
$("messages").addEventListener("scroll", () => {
  const entry = active && conversations.get(active);
  if (entry && entry.more && $("messages").scrollTop === 0) loadOlder(entry, active);
});

// MARK: Messages

function addMessage(message, live) {
  const key = keyOf(message);
  const entry = conversation(key);
  if (entry.messages.has(message.id)) return;
  // A message this page sent shows under its pending id until the ack; replace it.
  for (const [id, existing] of entry.messages) {
    if (id.startsWith("pending:") && existing.client_msg_id === message.client_msg_id) entry.messages.delete(id);
  }
  entry.messages.set(message.id, message);
  askPresence(entry);
  if (live && typingUntil.has(key) && typingUntil.get(key).user === message.from) {
    typingUntil.delete(key); // the message they were typing has come
    renderTyping();
  }
  if (live && key !== active && message.from !== me) entry.unread += 1;
  if (key === active) {
    renderMessages(live);
    if (live && message.from !== me) markRead(entry);
  }
  renderConversations();
}

function sortedMessages(entry) {
  return [...entry.messages.values()].sort((a, b) => {
    if (!!a.pending !== !!b.pending) return a.pending ? 1 : -1;
    return a.pending ? a.sentAt - b.sentAt : compareIds(a.id, b.id);
  });
}

function readBySomeone(entry, message) {
  return Object.entries(entry.reads).some(([user, upTo]) => user !== me && compareIds(upTo, message.id) >= 0);
}

function renderMessages(scroll) {
  const box = $("messages");
  const older = $("older");
  const entry = active && conversations.get(active);
  box.replaceChildren(older);
  older.hidden = !(entry && entry.more && entry.loaded);
  if (!entry) return;
  for (const message of sortedMessages(entry)) box.append(renderLine(entry, message));
  if (scroll) box.scrollTop = box.scrollHeight;
}

function renderLine(entry, message) {
  const mine = message.from === me;
  const line = document.createElement("div");
  line.className = "line" + (mine ? " mine" : "");
  line.dataset.testid = "message";
  line.dataset.id = message.id;
  line.dataset.from = message.from;
  if (!mine || entry.address.group) {
    const from = document.createElement("div");
    from.className = "from";
    from.textContent = message.from;
    line.append(from);
  }
  const text = document.createElement("div");
  text.className = "text";
  text.dataset.testid = "message-text";
  const body = message.body;
  text.textContent = body && typeof body === "object" && "text" in body ? String(body.text) : JSON.stringify(body);
  line.append(text);
  for (const attachment of message.attachments || []) line.append(renderAttachment(attachment));
  if (mine) {
    const meta = document.createElement("div");
    meta.className = "meta";
    const state = document.createElement("span");
    state.dataset.testid = "receipt";
    if (message.pending) {
      state.className = "state pending";
      state.textContent = message.failed ? "not sent: " + message.failed : "sending…";
      state.dataset.state = message.failed ? "failed" : "pending";
    } else if (readBySomeone(entry, message)) {
      state.className = "state read";
      state.textContent = "✓✓ read";
      state.dataset.state = "read";
    } else {
      state.className = "state sent";
      state.textContent = "✓ sent";
      state.dataset.state = "sent";
    }
    meta.append(state);
    line.append(meta);
  }
  return line;
}

const imageCache = new Map(); // media url → object URL (bounded)

function renderAttachment(attachment) {
  const isImage = (attachment.content_type || "").startsWith("image/");
  if (!isImage || !(attachment.thumbnail_url || attachment.url)) {
    const link = document.createElement("div");
    link.className = "file";
    link.textContent = "file: " + (attachment.name || attachment.media_id || "attachment");
    return link;
  }
  const image = document.createElement("img");
  image.dataset.testid = "thumbnail";
  image.alt = attachment.name || "image";
  if (attachment.width && attachment.height) image.title = attachment.width + "×" + attachment.height;
  const source = attachment.thumbnail_url || attachment.url;
  // Media needs the bearer token, which an <img src> cannot send: fetch it, show a blob: URL.
  const cached = imageCache.get(source);
  if (cached) image.src = cached;
  else {
    client.download(source).then((blob) => {
      const url = URL.createObjectURL(blob);
      if (imageCache.size > 200) {
        const [first] = imageCache.keys();
        URL.revokeObjectURL(imageCache.get(first));
        imageCache.delete(first);
      }
      imageCache.set(source, url);
      image.src = url;
    }).catch((error) => { image.alt = "image unavailable: " + error.message; image.dataset.error = error.message; });
  }
  return image;
}

function markRead(entry) {
  if (document.visibilityState === "hidden") return;
  const last = [...entry.messages.values()].filter((m) => !m.pending && m.from !== me).map((m) => m.id).sort(compareIds).pop();
  if (last && (!entry.readSent || compareIds(last, entry.readSent) > 0)) {
    entry.readSent = last;
    client.read(entry.address, last);
  }
}

document.addEventListener("visibilitychange", () => {
  const entry = active && conversations.get(active);
  if (entry) markRead(entry);
});

function onAck(ack) {
  for (const [key, entry] of conversations) {
    const pendingID = "pending:" + ack.client_msg_id;
    const pending = entry.messages.get(pendingID);
    if (!pending) continue;
    entry.messages.delete(pendingID);
    entry.messages.set(ack.id, { ...pending, id: ack.id, seq: ack.seq, ts: ack.ts, pending: false });
    askPresence(entry);
    if (key === active) renderMessages(false);
  }
}

function onReceipt(receipt) {
  const key = receipt.with.group ? "group:" + receipt.with.group : "user:" + receipt.with.user;
  const entry = conversations.get(key);
  if (!entry) return;
  const before = entry.reads[receipt.from];
  if (!before || compareIds(receipt.up_to, before) > 0) entry.reads[receipt.from] = receipt.up_to;
  if (key === active) renderMessages(false);
}

function onTyping(event) {
  const key = event.to.group ? "group:" + event.to.group : "user:" + event.from;
  typingUntil.set(key, { user: event.from, until: Date.now() + 4000 });
  renderTyping();
  setTimeout(renderTyping, 4100);
}

function renderTyping() {
  const now = Date.now();
  const current = active && typingUntil.get(active);
  const box = $("typing");
  if (current && current.until > now) {
    box.textContent = current.user + " is typing…";
    box.dataset.user = current.user;
  } else {
    box.textContent = "";
    delete box.dataset.user;
  }
}

// With presence.visibility: shared, a user's presence is visible once a message was exchanged:
// ask again after the first one.
function askPresence(entry) {
  const user = entry.address.user;
  if (!user || presence.has(user) || entry.presenceAsked) return;
  entry.presenceAsked = true;
  client.subscribePresence([user]).catch(() => { entry.presenceAsked = false; });
}

function onPresence(event) {
  for (const state of event.users || []) presence.set(state.user, state.status);
  renderConversations();
}

// MARK: Composer

let lastTyping = 0;
$("message-input").addEventListener("input", () => {
  if (!active || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  client.typing(addressOf(active));
});

$("attach").addEventListener("change", () => {
  const file = $("attach").files[0];
  $("attachment-name").textContent = file ? file.name : "";
});

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!active) return;
  const entry = conversations.get(active);
  const text = $("message-input").value;
  const file = $("attach").files[0];
  if (!text.trim() && !file) return;
  $("message-input").value = "";
  $("attach").value = "";
  $("attachment-name").textContent = "";
  const clientMsgId = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
  const local = { id: "pending:" + clientMsgId, client_msg_id: clientMsgId, from: me, to: entry.address, body: { text }, pending: true, sentAt: Date.now() };
  entry.messages.set(local.id, local);
  renderMessages(true);
  try {
    let attachments;
    if (file) {
      if (mediaAvailable === false) throw new Error("this gateway has no media upload (POST /v1/media)");
      let uploaded;
      try {
        uploaded = await client.upload(file, { name: file.name });
        mediaAvailable = true;
      } catch (error) {
        // A gateway without media has no /v1/media route.
        if (error.status === 404 || error.status === 405) {
          mediaAvailable = false;
          throw new Error("this gateway has no media upload (POST /v1/media)");
        }
        throw error;
      }
      attachments = [{ media_id: uploaded.media_id }];
      local.attachments = [{ media_id: uploaded.media_id, content_type: uploaded.content_type, name: file.name, url: "/v1/media/" + uploaded.media_id,
        thumbnail_url: uploaded.thumbnail ? "/v1/media/" + uploaded.thumbnail.media_id : undefined }];
    }
    await client.send(entry.address, { text }, { attachments, clientMsgId });
  } catch (error) {
    local.failed = error.message;
    renderMessages(false);
  }
});
