/* Qontak sandbox web inbox.
 *
 * Polls GET /_sandbox/messages?after=<seq> (same origin): each answer holds only the messages that
 * changed since the last one (new, or moved on to another status) and the seq to ask from next, so
 * an open tab costs the sandbox what changed, not what it stores (see qontak/sandbox/_feed.py). A
 * first load catches up in pages ("more": true) before drawing. A feed that answers without a seq
 * (a plain {"data": [...]} snapshot) is taken whole each time. The page shows every message the sandbox accepted the way
 * WhatsApp shows a template message to its recipient: header media, body with WhatsApp formatting,
 * footer, time, status ticks and buttons. Everything is built with DOM nodes and textContent, never
 * innerHTML with data, so nothing a sender puts in a variable can run in this page.
 *
 * Test hooks (data-testid): recipient [data-number], bubble [data-message-id][data-status], body,
 * footer, header, ticks [data-status], time, button [data-button-type], see-all, error, connection.
 */
(function () {
  "use strict";

  var POLL_MS = 500;
  var POLL_HIDDEN_MS = 2000;
  var FEED_URL = "/_sandbox/messages";
  var FEED_LIMIT = 500;
  var SVG_NS = "http://www.w3.org/2000/svg";

  // ---------------------------------------------------------------- icons (inline SVG, no files)
  var ICONS = {
    clock: { box: "0 0 16 15", paths: ["M8 1.6a6 6 0 1 0 0 12 6 6 0 0 0 0-12zm0 1.3a4.7 4.7 0 1 1 0 9.4 4.7 4.7 0 0 1 0-9.4zM7.4 4.4v3.9l3.1 1.9.6-1-2.5-1.5V4.4z"] },
    check: { box: "0 0 16 15", paths: ["M10.91 3.316l-.478-.372a.365.365 0 0 0-.51.063L4.566 9.879a.32.32 0 0 1-.484.033L1.891 7.769a.366.366 0 0 0-.515.006l-.423.433a.364.364 0 0 0 .006.514l3.258 3.185c.143.14.361.125.484-.033l6.272-8.048a.365.365 0 0 0-.063-.51z"] },
    dblcheck: { box: "0 0 16 15", paths: ["M15.01 3.316l-.478-.372a.365.365 0 0 0-.51.063L8.666 9.879a.32.32 0 0 1-.484.033l-.358-.325a.319.319 0 0 0-.484.032l-.378.483a.418.418 0 0 0 .036.541l1.32 1.266c.143.14.361.125.484-.033l6.272-8.048a.366.366 0 0 0-.064-.512zm-4.1 0l-.478-.372a.365.365 0 0 0-.51.063L4.566 9.879a.32.32 0 0 1-.484.033L1.891 7.769a.366.366 0 0 0-.515.006l-.423.433a.364.364 0 0 0 .006.514l3.258 3.185c.143.14.361.125.484-.033l6.272-8.048a.365.365 0 0 0-.063-.51z"] },
    alert: { box: "0 0 16 16", paths: ["M8 1a7 7 0 1 0 0 14A7 7 0 0 0 8 1zm-.9 3.2h1.8l-.2 5.3H7.3zM8 10.6a1.05 1.05 0 1 1 0 2.1 1.05 1.05 0 0 1 0-2.1z"] },
    external: { box: "0 0 24 24", paths: ["M14 3v2h3.59l-9.83 9.83 1.41 1.41L19 6.41V10h2V3h-7zm5 16H5V5h7V3H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2v-7h-2v7z"] },
    phone: { box: "0 0 24 24", paths: ["M20 15.5c-1.25 0-2.45-.2-3.57-.57a1.02 1.02 0 0 0-1.02.24l-2.2 2.2a15.05 15.05 0 0 1-6.59-6.58l2.2-2.21a.96.96 0 0 0 .25-1A11.36 11.36 0 0 1 8.5 4c0-.55-.45-1-1-1H4c-.55 0-1 .45-1 1 0 9.39 7.61 17 17 17 .55 0 1-.45 1-1v-3.5c0-.55-.45-1-1-1z"] },
    reply: { box: "0 0 24 24", paths: ["M10 9V5l-7 7 7 7v-4.1c5 0 8.5 1.6 11 5.1-1-5-4-10-11-11z"] },
    copy: { box: "0 0 24 24", paths: ["M16 1H4c-1.1 0-2 .9-2 2v14h2V3h12V1zm3 4H8c-1.1 0-2 .9-2 2v14c0 1.1.9 2 2 2h11c1.1 0 2-.9 2-2V7c0-1.1-.9-2-2-2zm0 16H8V7h11v14z"] },
    list: { box: "0 0 24 24", paths: ["M3 13h2v-2H3v2zm0 4h2v-2H3v2zm0-8h2V7H3v2zm4 4h14v-2H7v2zm0 4h14v-2H7v2zM7 7v2h14V7H7z"] },
    image: { box: "0 0 24 24", paths: ["M21 19V5a2 2 0 0 0-2-2H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2zM8.5 13.5l2.5 3.01L14.5 12l4.5 6H5l3.5-4.5z"] },
    play: { box: "0 0 24 24", paths: ["M8 5v14l11-7z"] },
    video: { box: "0 0 24 24", paths: ["M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11l-4 4z"] },
    doc: { box: "0 0 24 24", paths: ["M14 2H6c-1.1 0-2 .9-2 2v16c0 1.1.9 2 2 2h12c1.1 0 2-.9 2-2V8l-6-6zm-1 7V3.5L18.5 9H13z"] },
    download: { box: "0 0 24 24", paths: ["M19 9h-4V3H9v6H5l7 7 7-7zM5 18v2h14v-2H5z"] }
  };

  function icon(name, cls) {
    var def = ICONS[name];
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", def.box);
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "icon" + (cls ? " " + cls : ""));
    def.paths.forEach(function (d) {
      var p = document.createElementNS(SVG_NS, "path");
      p.setAttribute("d", d);
      p.setAttribute("fill", "currentColor");
      svg.appendChild(p);
    });
    return svg;
  }

  // -------------------------------------------------------------------------- small DOM helpers
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        var value = attrs[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "class") node.className = value;
        else if (key === "text") node.textContent = value;
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function str(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  /** Only http(s) links become clickable; anything else (javascript:, data:) stays text. */
  function safeHref(url) {
    var s = str(url).trim();
    return /^https?:\/\//i.test(s) ? s : null;
  }

  function safeDecode(text) {
    try { return decodeURIComponent(text); } catch (e) { return text; }
  }

  function safeTel(number) {
    var s = str(number).replace(/[^\d+]/g, "");
    return s ? "tel:" + s : null;
  }

  // ------------------------------------------------------------------ WhatsApp text formatting
  // *bold*, _italic_, ~strike~, ```monospace```; URLs become links. Works on text, builds nodes.
  // A marker opens before a non-space and closes after one, on the same line, not inside a word.
  var INLINE = /(^|[^\w*_~`])([*_~])(?!\s|\2)([^\n]*?)(?<!\s)\2(?![\w*_~`])/;
  var INLINE_TAGS = { "*": "strong", "_": "em", "~": "del" };
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}]/i;

  function appendLinked(parent, text) {
    var rest = text;
    var m;
    while ((m = URL_RE.exec(rest))) {
      if (m.index > 0) parent.appendChild(document.createTextNode(rest.slice(0, m.index)));
      parent.appendChild(el("a", { href: m[0], target: "_blank", rel: "noopener noreferrer", text: m[0] }));
      rest = rest.slice(m.index + m[0].length);
    }
    if (rest) parent.appendChild(document.createTextNode(rest));
  }

  function appendInline(parent, text) {
    var rest = text;
    var m;
    while ((m = INLINE.exec(rest))) {
      var start = m.index + m[1].length;
      var before = rest.slice(0, start);
      // A marker inside a URL (https://x.com/a_b_c) is not formatting.
      var urlBefore = /https?:\/\/\S*$/i.test(before);
      if (urlBefore) {
        var urlEnd = rest.slice(start).search(/\s/);
        var cut = urlEnd < 0 ? rest.length : start + urlEnd;
        appendLinked(parent, rest.slice(0, cut));
        rest = rest.slice(cut);
        continue;
      }
      if (before) appendLinked(parent, before);
      var node = el(INLINE_TAGS[m[2]]);
      appendInline(node, m[3]);
      parent.appendChild(node);
      rest = rest.slice(start + m[2].length * 2 + m[3].length);
    }
    if (rest) appendLinked(parent, rest);
  }

  function appendFormatted(parent, text) {
    var parts = str(text).split(/```([\s\S]+?)```/);
    parts.forEach(function (part, i) {
      if (i % 2 === 1) parent.appendChild(el("code", { text: part }));
      else if (part) appendInline(parent, part);
    });
    return parent;
  }

  /** The body as plain text without formatting markers, for previews. */
  function plainText(text) {
    var holder = document.createElement("div");
    appendFormatted(holder, text);
    return holder.textContent.replace(/\s+/g, " ").trim();
  }

  // ------------------------------------------------------------------------------- time & names
  function parseDate(iso) {
    var d = new Date(str(iso));
    return isNaN(d.getTime()) ? null : d;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function hhmm(d) {
    return d ? pad(d.getHours()) + ":" + pad(d.getMinutes()) : "";
  }

  function dayKey(d) {
    return d ? d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) : "";
  }

  var MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December"];

  function dayLabel(d) {
    if (!d) return "";
    var today = new Date();
    var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (dayKey(d) === dayKey(today)) return "Today";
    if (dayKey(d) === dayKey(yesterday)) return "Yesterday";
    return d.getDate() + " " + MONTHS[d.getMonth()] + " " + d.getFullYear();
  }

  function listTime(d) {
    if (!d) return "";
    var today = new Date();
    if (dayKey(d) === dayKey(today)) return hhmm(d);
    return pad(d.getDate()) + "/" + pad(d.getMonth() + 1) + "/" + d.getFullYear();
  }

  /** 6281234567890 -> +62 812-3456-7890 (Indonesian numbers); others get a plain "+". */
  function prettyNumber(number) {
    var digits = str(number).replace(/\D/g, "");
    if (!digits) return str(number);
    var m = /^62(8\d{2})(\d{3,4})(\d{3,5})$/.exec(digits);
    if (m) return "+62 " + m[1] + "-" + m[2] + "-" + m[3];
    return "+" + digits;
  }

  function initials(name, number) {
    var letters = str(name).trim().split(/\s+/).map(function (w) {
      var m = /[\p{L}\p{N}]/u.exec(w);
      return m ? m[0] : "";
    }).filter(Boolean);
    if (!letters.length) return str(number).slice(-2) || "?";
    return (letters[0] + (letters.length > 1 ? letters[letters.length - 1] : "")).toUpperCase();
  }

  var AVATAR_COLOURS = 8;
  function avatarColour(key) {
    var h = 2166136261;
    for (var i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
    return "c" + ((h >>> 0) % AVATAR_COLOURS);
  }

  function fileExtension(name) {
    var m = /\.([a-z0-9]{1,5})$/i.exec(str(name).split(/[?#]/)[0]);
    return m ? m[1].toUpperCase() : "";
  }

  /** 2048 -> "2 kB"; text sizes ("1 page") are shown as they are. */
  function formatSize(size) {
    if (typeof size !== "number" || !isFinite(size)) return str(size);
    var units = ["B", "kB", "MB", "GB"];
    var i = 0;
    while (size >= 1000 && i < units.length - 1) { size /= 1000; i++; }
    return (i && size < 10 ? size.toFixed(1) : Math.round(size)) + " " + units[i];
  }

    function filenameOf(header) {
    if (header.filename) return str(header.filename);
    var path = str(header.url).split(/[?#]/)[0];
    var last = path.slice(path.lastIndexOf("/") + 1);
    last = safeDecode(last);
    return last || header.format.toLowerCase();
  }

  // ------------------------------------------------------------------------------ status ticks
  var STATUS_TEXT = {
    pending: "Pending",
    sent: "Sent",
    delivered: "Delivered",
    read: "Read",
    failed: "Failed"
  };

  function ticks(status) {
    var s = STATUS_TEXT[status] ? status : "pending";
    var wrap = el("span", {
      class: "ticks ticks-" + s,
      "data-testid": "ticks",
      "data-status": s,
      role: "img",
      "aria-label": STATUS_TEXT[s],
      title: STATUS_TEXT[s]
    });
    var name = { pending: "clock", sent: "check", delivered: "dblcheck", read: "dblcheck", failed: "alert" }[s];
    wrap.setAttribute("data-icon", name);
    wrap.appendChild(icon(name));
    return wrap;
  }

  // ---------------------------------------------------------------------------- header media
  function mediaLink(url, label, cls, children) {
    var href = safeHref(url);
    if (href) {
      return el("a", { class: cls, href: href, target: "_blank", rel: "noopener noreferrer",
        "aria-label": label, title: label }, children);
    }
    return el("div", { class: cls, role: "img", "aria-label": label, title: label }, children);
  }

  function renderHeader(header) {
    if (!header || !header.format) return null;
    var format = str(header.format).toUpperCase();
    if (format === "TEXT") {
      var h = el("div", { class: "hdr-text", "data-testid": "header", "data-format": "TEXT" });
      appendFormatted(h, header.text);
      return h;
    }
    var filename = filenameOf(header);
    if (format === "IMAGE") {
      var ph = el("div", { class: "media-ph", "aria-hidden": "true" }, [
        icon("image", "media-ph-icon"),
        el("span", { class: "media-ph-name", text: filename })
      ]);
      var box = mediaLink(header.url, "Image: " + filename, "media media-image", [ph]);
      box.setAttribute("data-testid", "header");
      box.setAttribute("data-format", "IMAGE");
      box.setAttribute("data-loaded", "pending");
      var src = safeHref(header.url) || (/^\/[^/]/.test(str(header.url)) ? str(header.url) : null);
      if (src) {
        var img = el("img", { alt: "Image: " + filename, src: src, decoding: "async", referrerpolicy: "no-referrer" });
        img.addEventListener("load", function () {
          if (img.naturalWidth > 0) {
            box.classList.add("loaded");
            box.setAttribute("data-loaded", "yes");
          }
        });
        img.addEventListener("error", function () {
          box.classList.add("broken");
          box.setAttribute("data-loaded", "no");
          img.remove();
        });
        box.appendChild(img);
      } else {
        box.classList.add("broken");
        box.setAttribute("data-loaded", "no");
      }
      return box;
    }
    if (format === "VIDEO") {
      var video = mediaLink(header.url, "Video: " + filename, "media media-video", [
        el("span", { class: "play", "aria-hidden": "true" }, [icon("play")]),
        el("span", { class: "media-caption" }, [icon("video"), el("span", { text: filename })])
      ]);
      video.setAttribute("data-testid", "header");
      video.setAttribute("data-format", "VIDEO");
      return video;
    }
    // DOCUMENT (and anything unknown): a file card.
    var ext = fileExtension(filename) || (format === "DOCUMENT" ? "FILE" : format);
    var card = mediaLink(header.url, "Document: " + filename, "media media-doc", [
      el("span", { class: "doc-icon doc-" + ext.toLowerCase(), "aria-hidden": "true" }, [
        icon("doc"), el("span", { class: "doc-ext", text: ext.slice(0, 4) })
      ]),
      el("span", { class: "doc-meta" }, [
        el("span", { class: "doc-name", text: filename }),
        el("span", { class: "doc-sub", text: ext + (header.size ? " · " + formatSize(header.size) : "") })
      ]),
      el("span", { class: "doc-dl", "aria-hidden": "true" }, [icon("download")])
    ]);
    card.setAttribute("data-testid", "header");
    card.setAttribute("data-format", "DOCUMENT");
    return card;
  }

  // --------------------------------------------------------------------------------- buttons
  function renderButton(b) {
    var type = str(b.type).toUpperCase();
    var text = str(b.text) || type;
    var attrs = { class: "btn", "data-testid": "button", "data-button-type": type };
    var node;
    var otp = type === "URL" ? /[?&]otp_type=copy_code\b/i.exec(str(b.url)) : null;
    if (otp || type === "OTP" || type === "COPY_CODE") {
      // Authentication templates: WhatsApp shows a "Copy code" button, not a link.
      var codeMatch = /[?&]code=([^&#]*)/.exec(str(b.url));
      var code = codeMatch ? safeDecode(codeMatch[1]) : str(b.code || b.value || "");
      node = el("button", Object.assign(attrs, { type: "button", "data-otp": "copy_code", "data-code": code,
        title: code ? "Copy " + code : "Copy code" }));
      node.appendChild(icon("copy"));
      node.addEventListener("click", function () {
        if (code && navigator.clipboard) navigator.clipboard.writeText(code).catch(function () {});
      });
      if (b.url) node.setAttribute("data-url", str(b.url));
    } else if (type === "URL") {
      var href = safeHref(b.url);
      node = href
        ? el("a", Object.assign(attrs, { href: href, target: "_blank", rel: "noopener noreferrer", title: href }))
        : el("span", Object.assign(attrs, { title: str(b.url) }));
      node.appendChild(icon("external"));
      if (b.url) node.setAttribute("data-url", str(b.url));
    } else if (type === "PHONE_NUMBER") {
      var tel = safeTel(b.phone_number);
      node = tel
        ? el("a", Object.assign(attrs, { href: tel, title: str(b.phone_number) }))
        : el("span", attrs);
      node.appendChild(icon("phone"));
      if (b.phone_number) node.setAttribute("data-phone-number", str(b.phone_number));
    } else {
      node = el("button", Object.assign(attrs, { type: "button", title: "Quick reply (not sent: the sandbox has no replies)" }));
      node.appendChild(icon("reply"));
    }
    node.appendChild(el("span", { class: "btn-text", text: text }));
    return node;
  }

  function renderButtons(buttons) {
    if (!buttons || !buttons.length) return null;
    var box = el("div", { class: "buttons", "data-testid": "buttons", role: "group", "aria-label": "Buttons" });
    var shown = buttons.length > 3 ? buttons.slice(0, 2) : buttons;
    shown.forEach(function (b) { box.appendChild(renderButton(b)); });
    if (buttons.length > 3) {
      var more = el("button", { class: "btn btn-more", type: "button", "data-testid": "see-all",
        title: "Show all " + buttons.length + " options" },
        [icon("list"), el("span", { class: "btn-text", text: "See all options" })]);
      more.addEventListener("click", function () {
        var rest = buttons.slice(2).map(renderButton);
        rest.forEach(function (node) { box.insertBefore(node, more); });
        more.remove();
        rest[0].focus();
      });
      box.appendChild(more);
    }
    return box;
  }

  // --------------------------------------------------------------------------------- bubbles
  function rendered(message) {
    return message.rendered || {};
  }

  /** Content that never changes after the send: header, body, footer, buttons. */
  function contentKey(message) {
    return JSON.stringify([message.rendered, message.created_at]);
  }

  /** What changes as the simulator moves the message on. */
  function statusKey(message) {
    return JSON.stringify([message.status, message.error, (message.status_history || []).length]);
  }

  function describeHistory(message) {
    var lines = [];
    var t = message.template || {};
    if (t.name) lines.push("Template: " + t.name + (t.language ? " (" + t.language + ")" : ""));
    if (message.whatsapp_message_id) lines.push("WhatsApp id: " + message.whatsapp_message_id);
    (message.status_history || []).forEach(function (h) {
      var d = parseDate(h.at);
      lines.push((STATUS_TEXT[h.status] || h.status) + ": " + (d ? d.toLocaleString() : str(h.at)));
    });
    return lines.join("\n");
  }

  function fillMeta(meta, message) {
    meta.textContent = "";
    var d = parseDate(message.created_at);
    meta.appendChild(el("time", { "data-testid": "time", datetime: str(message.created_at), text: hhmm(d) }));
    meta.appendChild(ticks(message.status));
  }

  function fillError(holder, message) {
    holder.textContent = "";
    holder.hidden = message.status !== "failed";
    if (message.status !== "failed") return;
    var err = message.error || {};
    var title = str(err.title) || "Message failed to send";
    holder.appendChild(icon("alert"));
    var text = el("span", {}, [
      el("strong", { text: "Not delivered" }),
      " · " + title + (err.code ? " (" + err.code + ")" : "")
    ]);
    holder.appendChild(text);
    if (err.details) holder.title = str(err.details);
  }

  function buildBubble(message) {
    var r = rendered(message);
    var row = el("div", { class: "row", "data-testid": "bubble" });
    var bubble = el("div", { class: "bubble" });
    var header = renderHeader(r.header);
    if (header) bubble.appendChild(header);
    var body = el("div", { class: "body", "data-testid": "body", dir: "auto" });
    appendFormatted(body, r.body);
    bubble.appendChild(body);
    if (r.footer) bubble.appendChild(el("div", { class: "footer", "data-testid": "footer", text: str(r.footer) }));
    var meta = el("div", { class: "meta" });
    bubble.appendChild(meta);
    var card = el("div", { class: "card" + (header && header.classList.contains("media") ? " has-media" : "") }, [bubble]);
    var buttons = renderButtons(r.buttons);
    if (buttons) {
      card.appendChild(buttons);
      card.classList.add("has-buttons");
    }
    row.appendChild(card);
    var error = el("div", { class: "error", "data-testid": "error", role: "note" });
    row.appendChild(error);
    row._meta = meta;
    row._error = error;
    row._card = card;
    return row;
  }

  function updateBubble(row, message) {
    row.setAttribute("data-message-id", str(message.id));
    row.setAttribute("data-status", str(message.status));
    if (message.whatsapp_message_id) row.setAttribute("data-wamid", str(message.whatsapp_message_id));
    var t = message.template || {};
    if (t.name) row.setAttribute("data-template", str(t.name));
    row._card.title = describeHistory(message);
    row.classList.toggle("failed", message.status === "failed");
    fillMeta(row._meta, message);
    fillError(row._error, message);
  }

  // ------------------------------------------------------------------------------------ state
  var state = {
    messages: [],          // oldest first (order of acceptance)
    index: {},             // message id -> position in messages
    cursor: 0,             // the feed's seq: what the next poll asks from
    feed: null,            // the feed's id; a new one after a sandbox reset
    pending: false,        // catching up: more pages to read before drawing
    dirty: false,          // changes read while catching up, not drawn yet
    byNumber: {},          // number -> {number, name, messages[]}
    order: [],             // numbers, most recent first
    selected: null,        // number shown on the right
    choice: null,          // number the user (or the URL's #hash) asked for; wins when present
    rows: {},              // message id -> {row, content, status}
    lastText: null,
    filter: ""
  };

  var dom = {};

  function groupMessages(messages) {
    var byNumber = {};
    messages.forEach(function (m) {
      var key = str(m.to_number) || "unknown";
      var g = byNumber[key] || (byNumber[key] = { number: key, name: "", messages: [] });
      g.messages.push(m);
      if (m.to_name) g.name = str(m.to_name);
    });
    var order = Object.keys(byNumber).sort(function (a, b) {
      var la = byNumber[a].messages[byNumber[a].messages.length - 1];
      var lb = byNumber[b].messages[byNumber[b].messages.length - 1];
      var ta = (parseDate(la.created_at) || 0) - 0;
      var tb = (parseDate(lb.created_at) || 0) - 0;
      if (tb !== ta) return tb - ta;
      return str(lb.id) < str(la.id) ? -1 : 1;
    });
    return { byNumber: byNumber, order: order };
  }

  function unreadCount(group) {
    return group.messages.filter(function (m) {
      return m.status === "pending" || m.status === "sent" || m.status === "delivered";
    }).length;
  }

  // ------------------------------------------------------------------------------- rendering
  function renderRecipients() {
    var list = dom.recipients;
    var filter = state.filter.toLowerCase();
    var wanted = state.order.filter(function (n) {
      var g = state.byNumber[n];
      return !filter || g.name.toLowerCase().indexOf(filter) >= 0 || n.indexOf(filter.replace(/\D/g, "") || filter) >= 0;
    });
    var existing = {};
    Array.prototype.forEach.call(list.children, function (li) { existing[li.getAttribute("data-number")] = li; });
    wanted.forEach(function (number, index) {
      var g = state.byNumber[number];
      var li = existing[number];
      delete existing[number];
      if (!li) {
        li = el("li", { class: "recipient-item", "data-number": number });
        var btn = el("button", { type: "button", class: "recipient", "data-testid": "recipient", "data-number": number });
        btn.addEventListener("click", function () { select(number, true); });
        li.appendChild(btn);
      }
      var button = li.firstChild;
      var last = g.messages[g.messages.length - 1];
      var d = parseDate(last.created_at);
      var unread = unreadCount(g);
      var name = g.name || prettyNumber(number);
      var sig = JSON.stringify([name, str(last.id), last.status, unread, number === state.selected, listTime(d)]);
      if (button._sig !== sig) {
        button._sig = sig;
        button.textContent = "";
        var preview = el("span", { class: "rc-preview" }, [
          last.status === "failed" ? ticks("failed") : ticks(last.status),
          el("span", { class: "rc-preview-text", "data-testid": "preview", text: previewText(last) })
        ]);
        button.appendChild(el("span", { class: "avatar " + avatarColour(number), "aria-hidden": "true", text: initials(g.name, number) }));
        button.appendChild(el("span", { class: "rc-main" }, [
          el("span", { class: "rc-top" }, [
            el("span", { class: "rc-name", "data-testid": "recipient-name", text: name }),
            el("span", { class: "rc-time" + (unread ? " unread" : ""), text: listTime(d) })
          ]),
          el("span", { class: "rc-number", text: prettyNumber(number) }),
          el("span", { class: "rc-bottom" }, [
            preview,
            unread ? el("span", { class: "rc-count", "data-testid": "unread", "aria-label": unread + " not yet read", text: String(unread) }) : null
          ])
        ]));
        var selected = number === state.selected;
        button.classList.toggle("selected", selected);
        if (selected) button.setAttribute("aria-current", "true");
        else button.removeAttribute("aria-current");
        button.setAttribute("aria-label", name + ", " + prettyNumber(number) + ", " + g.messages.length +
          " message" + (g.messages.length === 1 ? "" : "s") + (unread ? ", " + unread + " not yet read" : ""));
      }
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    });
    Object.keys(existing).forEach(function (n) { existing[n].remove(); });
    dom.sidebarEmpty.hidden = state.order.length > 0;
    if (state.order.length > 0 && !wanted.length) {
      dom.sidebarEmpty.hidden = false;
      dom.sidebarEmpty.textContent = "No chat matches “" + state.filter + "”.";
    } else {
      dom.sidebarEmpty.textContent = "No messages yet.";
    }
  }

  function previewText(message) {
    var r = rendered(message);
    var prefix = "";
    if (r.header && r.header.format) {
      prefix = { IMAGE: "Photo", VIDEO: "Video", DOCUMENT: filenameOf(r.header) }[str(r.header.format).toUpperCase()] || "";
      if (prefix) prefix += " · ";
    }
    return prefix + plainText(r.body);
  }

  function renderChat() {
    var group = state.selected ? state.byNumber[state.selected] : null;
    dom.empty.hidden = !!group;
    dom.chatBar.hidden = !group;
    dom.chatFoot.hidden = !group;
    if (!group) {
      dom.messages.textContent = "";
      state.rows = {};
      return;
    }
    dom.chatName.textContent = group.name || prettyNumber(group.number);
    dom.chatNumber.textContent = prettyNumber(group.number);
    dom.chatAvatar.className = "avatar " + avatarColour(group.number);
    dom.chatAvatar.textContent = initials(group.name, group.number);
    dom.messages.setAttribute("data-number", group.number);

    var scroller = dom.scroll;
    var nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    var added = false;

    // Build the wanted sequence of nodes: day separators and bubbles, keyed and reused.
    var wanted = [];
    var lastDay = null;
    var seen = {};
    group.messages.forEach(function (m, i) {
      var d = parseDate(m.created_at);
      var day = dayKey(d);
      if (day !== lastDay) {
        lastDay = day;
        var sepKey = "day:" + day;
        var sep = state.rows[sepKey];
        var label = dayLabel(d);
        if (!sep || sep.label !== label) {
          sep = state.rows[sepKey] = { row: el("div", { class: "day", role: "separator" }, [el("span", { text: label })]), label: label };
        }
        seen[sepKey] = true;
        wanted.push(sep.row);
      }
      var id = str(m.id);
      var key = "msg:" + id;
      var entry = state.rows[key];
      var ck = contentKey(m);
      if (!entry || entry.content !== ck) {
        entry = state.rows[key] = { row: buildBubble(m), content: ck, status: null };
        added = true;
      }
      var sk = statusKey(m);
      if (entry.status !== sk) {
        updateBubble(entry.row, m);
        entry.status = sk;
      }
      var prev = group.messages[i - 1];
      entry.row.classList.toggle("first", !prev || dayKey(parseDate(prev.created_at)) !== day);
      seen[key] = true;
      wanted.push(entry.row);
    });
    Object.keys(state.rows).forEach(function (k) {
      if (!seen[k]) {
        state.rows[k].row.remove();
        delete state.rows[k];
      }
    });
    var list = dom.messages;
    wanted.forEach(function (node, index) {
      if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
    });
    while (list.children.length > wanted.length) list.lastChild.remove();
    if (added && (nearBottom || state.justSelected)) scroller.scrollTop = scroller.scrollHeight;
    state.justSelected = false;
  }

  function select(number, byUser) {
    state.choice = number;
    if (byUser && history.replaceState) history.replaceState(null, "", "#" + encodeURIComponent(number));
    render();
  }

  function render() {
    // The chosen chat when it has messages; otherwise (and by default) the most recent one.
    var shown = state.choice && state.byNumber[state.choice] ? state.choice : state.order[0] || null;
    if (shown !== state.selected) {
      state.selected = shown;
      state.justSelected = true;
      dom.messages.textContent = "";
      state.rows = {};
    }
    renderRecipients();
    renderChat();
  }

  // --------------------------------------------------------------------------------- polling
  function setConnection(ok, detail) {
    var conn = dom.conn;
    var stateName = ok ? "live" : "offline";
    if (conn.getAttribute("data-state") === stateName && conn._detail === detail) return;
    conn.setAttribute("data-state", stateName);
    conn._detail = detail;
    conn.textContent = ok ? "Live · " + detail : "Reconnecting… " + detail;
  }

  function regroup() {
    var grouped = groupMessages(state.messages);
    state.byNumber = grouped.byNumber;
    state.order = grouped.order;
    render();
    document.documentElement.setAttribute("data-messages", String(state.messages.length));
  }

  function reindex() {
    state.index = {};
    state.messages.forEach(function (m, i) { state.index[str(m.id)] = i; });
  }

  /** A whole snapshot: {"data": [every message]}. */
  function applySnapshot(text, payload) {
    if (text === state.lastText) return;
    state.lastText = text;
    state.messages = Array.isArray(payload) ? payload : payload && Array.isArray(payload.data) ? payload.data : [];
    reindex();
    regroup();
  }

  /** Changes since the last poll: new messages are added, changed ones replaced in place. */
  function applyChanges(payload) {
    if (payload.reset) {
      state.messages = [];
      state.index = {};
    }
    var unsorted = false;
    payload.data.forEach(function (m) {
      var id = str(m.id);
      var at = state.index[id];
      if (at === undefined) {
        var last = state.messages[state.messages.length - 1];
        if (last && !(m.order > last.order)) unsorted = true;
        state.index[id] = state.messages.length;
        state.messages.push(m);
      } else {
        state.messages[at] = m;
      }
    });
    if (unsorted) {
      state.messages.sort(function (a, b) { return a.order - b.order; });
      reindex();
    }
    state.cursor = payload.seq;
    state.feed = payload.feed;
    state.pending = !!payload.more;
    if (!state.pending && (payload.data.length || payload.reset || state.dirty)) {
      state.dirty = false;
      regroup();
    } else if (state.pending && payload.data.length) {
      state.dirty = true;  // drawn once the catching up is done
    }
  }

  function apply(text) {
    var payload = JSON.parse(text);
    if (payload && typeof payload.seq === "number" && Array.isArray(payload.data)) applyChanges(payload);
    else applySnapshot(text, payload);
  }

  function feedUrl() {
    var url = FEED_URL + "?after=" + encodeURIComponent(String(state.cursor)) + "&limit=" + FEED_LIMIT;
    return state.feed ? url + "&feed=" + encodeURIComponent(state.feed) : url;
  }

  var timer = null;
  function poll() {
    timer = null;
    fetch(feedUrl(), { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (text) {
        apply(text);
        var n = state.messages.length;
        setConnection(true, n + " message" + (n === 1 ? "" : "s"));
      })
      .catch(function (err) {
        state.pending = false;
        setConnection(false, "(" + (err && err.message ? err.message : "offline") + ")");
      })
      .then(schedule);
  }

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(poll, state.pending ? 0 : document.hidden ? POLL_HIDDEN_MS : POLL_MS);
  }

  function start() {
    dom = {
      conn: document.getElementById("conn"),
      recipients: document.getElementById("recipients"),
      sidebarEmpty: document.getElementById("sidebar-empty"),
      search: document.getElementById("search"),
      chatBar: document.getElementById("chat-bar"),
      chatName: document.getElementById("chat-name"),
      chatNumber: document.getElementById("chat-number"),
      chatAvatar: document.getElementById("chat-avatar"),
      chatFoot: document.getElementById("chat-foot"),
      scroll: document.getElementById("chat-scroll"),
      messages: document.getElementById("messages"),
      empty: document.getElementById("empty")
    };
    var hash = decodeURIComponent(location.hash.slice(1));
    if (hash) state.choice = hash;
    dom.search.addEventListener("input", function () {
      state.filter = dom.search.value.trim();
      renderRecipients();
    });
    document.addEventListener("visibilitychange", function () { if (!document.hidden) schedule(); });
    render();
    poll();
  }

  // Exposed for tests and for people poking at the page from the console.
  window.qontakInbox = { format: function (text) { return appendFormatted(el("div"), text).innerHTML; }, poll: poll };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
