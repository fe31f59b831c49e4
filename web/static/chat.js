// @ts-check
// Chat: the message list, its unread count, and its history. Messages
// travel over the session's data channel (session.js); here they are only
// shown. Names and texts are always set as text, never as HTML; web links
// (http and https only) become links that open in a new tab without
// access to this page. The history of the room is kept in sessionStorage,
// so it survives a reconnect and a reload of the tab. Main thread.

const MAX_HISTORY = 200;
const URL_RE = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/**
 * linkify turns text into text nodes and <a> elements for its web links.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function linkify(text) {
  const out = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const i = m.index ?? 0;
    let url;
    try { url = new URL(m[0]); } catch { continue; }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue;
    out.append(text.slice(last, i));
    const a = document.createElement('a');
    a.href = url.href;
    a.textContent = m[0];
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    out.append(a);
    last = i + m[0].length;
  }
  out.append(text.slice(last));
  return out;
}

/**
 * @typedef {{from: string, text: string, at: string, self?: boolean}} Line
 *   from: the sender's name; at: ISO 8601 time
 */

export class Chat {
  /**
   * @param {object} o
   * @param {string} o.room
   * @param {HTMLElement} o.list the <ol> of messages
   * @param {HTMLElement} o.badge the unread count on the chat button
   * @param {(text: string) => void} o.announce tells screen readers
   */
  constructor({ room, list, badge, announce }) {
    this.key = `roundtable.chat.${room}`;
    this.list = list;
    this.badge = badge;
    this.announce = announce;
    this.open = false;
    this.unread = 0;
    /** @type {Line[]} */
    this.history = [];
    this.restore();
  }

  /** restore shows the history kept for this room in this tab. */
  restore() {
    let saved = [];
    try { saved = JSON.parse(sessionStorage.getItem(this.key) || '[]'); } catch { /* none */ }
    if (!Array.isArray(saved)) return;
    for (const l of saved.slice(-MAX_HISTORY)) {
      if (l && typeof l.from === 'string' && typeof l.text === 'string' && typeof l.at === 'string') {
        this.history.push(l);
        this.show(l);
      }
    }
  }

  /**
   * add shows a message, keeps it in the history and, while the chat is
   * closed, counts it as unread.
   * @param {string} from
   * @param {string} text
   * @param {Date} at
   * @param {boolean} self
   */
  add(from, text, at, self) {
    const line = { from, text, at: at.toISOString(), self };
    this.show(line);
    this.history.push(line);
    if (this.history.length > MAX_HISTORY) this.history.splice(0, this.history.length - MAX_HISTORY);
    try { sessionStorage.setItem(this.key, JSON.stringify(this.history)); } catch { /* full */ }
    if (!self && !this.open) {
      this.unread++;
      this.showUnread();
      this.announce(`Message from ${from}`);
    }
  }

  /** @param {Line} l */
  show(l) {
    const li = document.createElement('li');
    if (l.self) li.className = 'self';
    const time = document.createElement('time');
    const at = new Date(l.at);
    time.dateTime = l.at;
    time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const who = document.createElement('strong');
    who.textContent = `${l.from}: `;
    const body = document.createElement('span');
    body.className = 'text';
    body.append(linkify(l.text));
    li.append(time, who, body);
    this.list.append(li);
    this.list.scrollTop = this.list.scrollHeight;
  }

  /** forget drops the room's history (the user left the call). */
  forget() {
    try { sessionStorage.removeItem(this.key); } catch { /* none */ }
  }

  /** @param {boolean} open whether the chat is on screen */
  setOpen(open) {
    this.open = open;
    if (open) { this.unread = 0; this.showUnread(); this.list.scrollTop = this.list.scrollHeight; }
  }

  /** showUnread puts the count on the chat button: "Chat 3 unread" to a screen reader. */
  showUnread() {
    this.badge.hidden = this.unread === 0;
    const words = document.createElement('span');
    words.className = 'visually-hidden';
    words.textContent = ' unread';
    this.badge.replaceChildren(String(this.unread), words);
  }
}
