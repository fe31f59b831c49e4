// @ts-check
// UI controls: the side sheets (chat, people), the keyboard shortcuts,
// the help dialog and the screen-reader announcer. They call back into the
// app for what each control does; they own only which sheet is open.
// Main thread.

/**
 * announcer returns a function that tells screen readers text through a
 * polite live region (the same text twice is announced twice).
 * @param {HTMLElement} region an aria-live element
 * @returns {(text: string) => void}
 */
export function announcer(region) {
  let flip = false;
  return (text) => {
    flip = !flip;
    region.textContent = flip ? text : `${text}\u00a0`;
  };
}

/**
 * Sheets shows one side sheet at a time (the chat or the people list): a
 * column beside the tiles on a wide window, a sheet over the tiles on a
 * phone. Opening one moves the focus into it; closing returns the focus to
 * its button. onToggle(name, open) follows every change.
 */
export class Sheets {
  /**
   * @param {Record<string, {panel: HTMLElement, button: HTMLButtonElement, focus: () => HTMLElement}>} sheets
   * @param {(name: string, open: boolean) => void} onToggle
   */
  constructor(sheets, onToggle) {
    this.sheets = sheets;
    this.onToggle = onToggle;
    /** @type {string|null} */
    this.current = null;
    for (const [name, s] of Object.entries(sheets)) {
      s.button.onclick = () => this.toggle(name);
      for (const b of s.panel.querySelectorAll('[data-close]')) /** @type {HTMLElement} */ (b).onclick = () => this.close();
    }
  }

  /** @param {string} name */
  toggle(name) {
    if (this.current === name) this.close();
    else this.open(name);
  }

  /** @param {string} name */
  open(name) {
    if (this.current) this.hide(this.current);
    const s = this.sheets[name];
    s.panel.hidden = false;
    s.button.setAttribute('aria-expanded', 'true');
    this.current = name;
    this.onToggle(name, true);
    s.focus().focus();
  }

  close() {
    const name = this.current;
    if (!name) return;
    this.hide(name);
    this.sheets[name].button.focus();
  }

  /** @param {string} name */
  hide(name) {
    const s = this.sheets[name];
    s.panel.hidden = true;
    s.button.setAttribute('aria-expanded', 'false');
    this.current = null;
    this.onToggle(name, false);
  }
}

/**
 * Keyboard shortcuts, the page's own, listed in its help dialog. A key
 * with Ctrl, Alt or Meta, or while a dialog is open does nothing here; so
 * does a letter typed into a field (Escape there still closes the sheet).
 * @typedef {{mic: () => void, camera: () => void, screen: () => void, chat: () => void, people: () => void,
 *   layout: () => void, page: (delta: number) => void, leave: () => void, help: () => void, close: () => void}} Actions
 */

/**
 * shortcutFor maps a keydown to an action name, or null.
 * @param {KeyboardEvent} e
 * @returns {keyof Actions | '[' | ']' | null}
 */
export function shortcutFor(e) {
  if (e.ctrlKey || e.altKey || e.metaKey || e.repeat) return null;
  if (document.querySelector('dialog[open]')) return null; // the dialog has its own keys
  if (e.key === 'Escape') return 'close';
  const t = /** @type {HTMLElement} */ (e.target);
  if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return null;
  if (e.code === 'KeyL' && e.shiftKey) return 'leave'; // whatever Caps Lock says
  if (e.key === '?') return 'help';
  if (e.key === '[' || e.key === ']') return e.key;
  if (e.shiftKey) return null;
  /** @type {Record<string, keyof Actions>} */
  const keys = { m: 'mic', v: 'camera', s: 'screen', c: 'chat', p: 'people', g: 'layout' };
  return keys[e.key.toLowerCase()] || null;
}

/**
 * bindShortcuts runs actions on their keys while live() is true (the call
 * is on).
 * @param {() => boolean} live
 * @param {Actions} actions
 */
export function bindShortcuts(live, actions) {
  document.addEventListener('keydown', (e) => {
    const name = live() ? shortcutFor(e) : null;
    if (!name || name === 'page') return;
    e.preventDefault();
    if (name === '[' || name === ']') actions.page(name === '[' ? -1 : 1);
    else actions[name]();
  });
}

/**
 * setPressed shows a toggle button's state.
 * @param {HTMLElement} button
 * @param {boolean} on
 */
export function setPressed(button, on) {
  button.setAttribute('aria-pressed', String(on));
}
