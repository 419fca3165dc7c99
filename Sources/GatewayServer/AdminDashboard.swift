import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /admin/`: one self-contained HTML page (inline CSS and JavaScript, no build step, no
/// CDN) that polls `/admin/stats` every second and draws the figures and a time-series chart.
///
/// The page is served without the admin token and holds no figures: its script reads the token
/// from `?token=` (or asks for it), keeps it in `sessionStorage`, drops it from the address bar,
/// and sends it as `Authorization: Bearer` to `/admin/stats`. Every figure has a stable `id` and
/// its raw number in `data-value`, so tests and scripts can read the page.
enum AdminDashboard {
    static func response() -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8",
                .cacheControl: "no-store",
                .contentSecurityPolicy:
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
                HTTPField.Name("Referrer-Policy")!: "no-referrer",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            ],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ChatGateway admin</title>
        <style>
          :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #6b7385; --line: #dde1e8; --blue: #2f6fde; --green: #1f9d55; --red: #c2362f; }
          * { box-sizing: border-box; }
          body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--ink); }
          header { display: flex; align-items: baseline; gap: 16px; padding: 14px 24px; background: var(--ink); color: #fff; }
          header h1 { font-size: 18px; margin: 0; }
          header .status { font-size: 13px; color: #c9cfdb; }
          header .status.error { color: #ffb3ae; }
          main { padding: 20px 24px; max-width: 1100px; }
          .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 12px; margin-bottom: 20px; }
          .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
          .card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
          .card .value { font-size: 24px; font-variant-numeric: tabular-nums; }
          section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin-bottom: 20px; }
          section h2 { font-size: 14px; margin: 0 0 10px; }
          table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
          th, td { text-align: right; padding: 4px 8px; border-bottom: 1px solid var(--line); }
          th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
          canvas { width: 100%; height: 200px; display: block; }
          .legend { display: flex; gap: 16px; font-size: 12px; color: var(--muted); margin-top: 6px; }
          .legend span::before { content: ""; display: inline-block; width: 10px; height: 3px; margin-right: 6px; vertical-align: middle; background: currentColor; }
          .legend .rate { color: var(--blue); } .legend .conn { color: var(--green); }
          form { display: flex; gap: 8px; }
          form[hidden] { display: none; }
          input { flex: 1; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
          button { padding: 6px 12px; border: 0; border-radius: 6px; background: var(--blue); color: #fff; font: inherit; }
        </style>
        </head>
        <body data-updates="0">
        <header>
          <h1>ChatGateway</h1>
          <span id="status" class="status">connecting…</span>
          <span id="updated-at" class="status"></span>
        </header>
        <main>
          <form id="token-form" hidden>
            <input id="token-input" type="password" placeholder="admin token" autocomplete="off">
            <button type="submit">Show</button>
          </form>
          <div class="cards">
            <div class="card"><div class="label">WebSocket</div><div class="value" id="connections-websocket" data-value="">–</div></div>
            <div class="card"><div class="label">Long-poll</div><div class="value" id="connections-longpoll" data-value="">–</div></div>
            <div class="card"><div class="label">Users online</div><div class="value" id="users-online" data-value="">–</div></div>
            <div class="card"><div class="label">Messages/s</div><div class="value" id="messages-per-second" data-value="">–</div></div>
            <div class="card"><div class="label">Messages accepted</div><div class="value" id="messages-accepted" data-value="">–</div></div>
            <div class="card"><div class="label">Messages rejected</div><div class="value" id="messages-rejected" data-value="">–</div></div>
            <div class="card"><div class="label">Frames in</div><div class="value" id="frames-in" data-value="">–</div></div>
            <div class="card"><div class="label">Frames out</div><div class="value" id="frames-out" data-value="">–</div></div>
            <div class="card"><div class="label">Stored messages</div><div class="value" id="store-messages" data-value="">–</div></div>
            <div class="card"><div class="label">Inbox entries</div><div class="value" id="store-inbox-entries" data-value="">–</div></div>
            <div class="card"><div class="label">Store size</div><div class="value" id="store-bytes" data-value="">–</div></div>
            <div class="card"><div class="label">Uptime</div><div class="value" id="uptime" data-value="">–</div></div>
          </div>
          <section>
            <h2>Messages per second and connections (last two minutes)</h2>
            <canvas id="chart" width="1000" height="200" data-points="0"></canvas>
            <div class="legend"><span class="rate">messages/s</span><span class="conn">connections</span></div>
          </section>
          <section>
            <h2>Pipeline stages</h2>
            <table>
              <thead><tr><th>stage</th><th>kind</th><th>processed</th><th>rejected</th><th>errors</th><th>p50 µs</th><th>p99 µs</th></tr></thead>
              <tbody id="stages-body"></tbody>
            </table>
          </section>
        </main>
        <script>
        "use strict";
        (function () {
          const MAX_SAMPLES = 120;
          const samples = [];           // {rate, connections}
          let previous = null;          // {accepted, at}
          let updates = 0;

          // The token: from ?token= once (then dropped from the address bar), else this tab's storage.
          const params = new URLSearchParams(location.search);
          if (params.has("token")) {
            sessionStorage.setItem("chatgate-admin-token", params.get("token"));
            history.replaceState(null, "", location.pathname);
          }
          let token = sessionStorage.getItem("chatgate-admin-token");

          const form = document.getElementById("token-form");
          form.addEventListener("submit", function (event) {
            event.preventDefault();
            token = document.getElementById("token-input").value;
            sessionStorage.setItem("chatgate-admin-token", token);
            form.hidden = true;
            refresh();
          });

          function setFigure(id, value, text) {
            const element = document.getElementById(id);
            element.dataset.value = String(value);
            element.textContent = text === undefined ? Number(value).toLocaleString("en-US") : text;
          }

          function formatBytes(bytes) {
            const units = ["B", "KiB", "MiB", "GiB", "TiB"];
            let value = bytes, unit = 0;
            while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
            return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
          }

          function formatDuration(seconds) {
            const d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
            const m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
            return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s + "s";
          }

          function setStatus(text, isError) {
            const element = document.getElementById("status");
            element.textContent = text;
            element.className = isError ? "status error" : "status";
          }

          function renderStages(stages) {
            const body = document.getElementById("stages-body");
            const rows = stages.map(function (stage) {
              const row = document.createElement("tr");
              row.dataset.stage = stage.name;
              row.id = "stage-" + stage.name;
              [stage.name, stage.kind, stage.processed, stage.rejected, stage.errors, stage.p50_us, stage.p99_us].forEach(function (value, index) {
                const cell = document.createElement("td");
                cell.className = ["name", "kind", "processed", "rejected", "errors", "p50", "p99"][index];
                cell.textContent = typeof value === "number" ? value.toLocaleString("en-US") : value;
                cell.dataset.value = String(value);
                row.appendChild(cell);
              });
              return row;
            });
            body.replaceChildren.apply(body, rows);
          }

          function drawChart() {
            const canvas = document.getElementById("chart");
            const context = canvas.getContext("2d");
            const width = canvas.width, height = canvas.height, pad = 24;
            context.clearRect(0, 0, width, height);
            context.strokeStyle = "#dde1e8";
            context.lineWidth = 1;
            for (let i = 0; i <= 4; i += 1) {
              const y = pad + (height - 2 * pad) * i / 4;
              context.beginPath(); context.moveTo(pad, y); context.lineTo(width - pad, y); context.stroke();
            }
            canvas.dataset.points = String(samples.length);
            if (samples.length < 2) { return; }
            const series = [
              { key: "rate", color: "#2f6fde" },
              { key: "connections", color: "#1f9d55" },
            ];
            series.forEach(function (line) {
              const top = Math.max(1, Math.max.apply(null, samples.map(function (s) { return s[line.key]; })));
              context.strokeStyle = line.color;
              context.lineWidth = 2;
              context.beginPath();
              samples.forEach(function (sample, index) {
                // The samples span the width (up to two minutes of them).
                const x = pad + (width - 2 * pad) * index / (samples.length - 1);
                const y = height - pad - (height - 2 * pad) * sample[line.key] / top;
                if (index === 0) { context.moveTo(x, y); } else { context.lineTo(x, y); }
              });
              context.stroke();
              context.fillStyle = line.color;
              context.font = "12px system-ui, sans-serif";
              context.fillText(line.key === "rate" ? "max " + top.toFixed(1) + "/s" : "max " + top, line.key === "rate" ? pad : pad + 120, 14);
            });
          }

          function render(stats) {
            const now = performance.now();
            let rate = 0;
            if (previous && now > previous.at) {
              rate = Math.max(0, (stats.messages_accepted - previous.accepted) * 1000 / (now - previous.at));
            }
            previous = { accepted: stats.messages_accepted, at: now };
            const connections = stats.connections.websocket + stats.connections.longpoll;
            samples.push({ rate: rate, connections: connections });
            if (samples.length > MAX_SAMPLES) { samples.shift(); }

            setFigure("connections-websocket", stats.connections.websocket);
            setFigure("connections-longpoll", stats.connections.longpoll);
            setFigure("users-online", stats.users_online);
            setFigure("messages-per-second", rate.toFixed(1), rate.toFixed(1));
            setFigure("messages-accepted", stats.messages_accepted);
            setFigure("messages-rejected", stats.messages_rejected);
            setFigure("frames-in", stats.frames_in);
            setFigure("frames-out", stats.frames_out);
            setFigure("store-messages", stats.store.messages);
            setFigure("store-inbox-entries", stats.store.inbox_entries);
            setFigure("store-bytes", stats.store.bytes, formatBytes(stats.store.bytes));
            setFigure("uptime", stats.uptime_s, formatDuration(stats.uptime_s));
            renderStages(stats.stages);
            drawChart();
            updates += 1;
            document.body.dataset.updates = String(updates);
            document.getElementById("updated-at").textContent = "updated " + new Date().toLocaleTimeString();
          }

          let timer = null;
          function refresh() {
            if (timer !== null) { clearTimeout(timer); timer = null; }
            if (!token) {
              setStatus("admin token needed", true);
              form.hidden = false;
              return;
            }
            fetch("/admin/stats", { headers: { "Authorization": "Bearer " + token }, cache: "no-store" })
              .then(function (response) {
                if (response.status === 401) {
                  token = null;
                  sessionStorage.removeItem("chatgate-admin-token");
                  throw new Error("wrong admin token");
                }
                if (!response.ok) { throw new Error("HTTP " + response.status); }
                return response.json();
              })
              .then(function (stats) {
                render(stats);
                setStatus("live", false);
              })
              .catch(function (error) { setStatus(String(error.message || error), true); })
              .finally(function () { if (token) { timer = setTimeout(refresh, 1000); } else { refresh(); } });
          }
          refresh();
        })();
        </script>
        </body>
        </html>
        """#
}
