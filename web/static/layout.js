// @ts-check
// Layout: where each tile goes on the stage. Pure geometry (plan, fit) and
// the Stage, which owns the layout state (mode, pinned tile, active
// speaker, page) and applies a plan to the tile elements. Everything runs
// on the page's main thread.
//
// Two layouts:
//   grid     every tile the same size, 16:9, as large as the stage allows,
//            all of them visible; paged beyond what fits legibly.
//   speaker  one tile large (pinned > a remote screen share > the active
//            speaker), the others in a strip below it, paged likewise.
// The grid turns into the speaker layout by itself while a tile is pinned
// or someone else shares a screen.

/** Pixels between tiles and around the stage. */
export const GAP = 8;
/** The narrowest legible tile, in CSS pixels: narrower means paging. */
export const MIN_TILE_WIDTH = 160;
/** Height of the page controls when a layout pages. */
export const PAGER_HEIGHT = 44;
const ASPECT = 16 / 9;

/** @typedef {{x: number, y: number, w: number, h: number}} Rect */
/** @typedef {{tiles: Map<string, Rect>, main: string|null, page: number, pages: number, pager: Rect|null}} Plan */

/**
 * maxPerPage is how many tiles one page shows at most: 6 on a phone-sized
 * stage (shorter side under 420 px, longer under 1000 px), 9 on a stage
 * under 1000 px wide, 16 on a wider one. More tiles than that are not
 * legible as faces even where they would be 160 px wide.
 * @param {number} width
 * @param {number} height
 */
export function maxPerPage(width, height) {
  if (Math.min(width, height) < 420 && Math.max(width, height) < 1000) return 6;
  return width < 1000 ? 9 : 16;
}

/**
 * fit returns the column count that makes n 16:9 tiles largest in a
 * width x height area, and their size (whole pixels).
 * @param {number} n
 * @param {number} width
 * @param {number} height
 */
export function fit(n, width, height) {
  let best = { cols: 1, rows: Math.max(1, n), w: 0, h: 0 };
  for (let cols = 1; cols <= Math.max(1, n); cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min((width - GAP * (cols - 1)) / cols, ((height - GAP * (rows - 1)) / rows) * ASPECT);
    if (w > best.w) best = { cols, rows, w, h: 0 };
  }
  best.w = Math.max(0, Math.floor(best.w));
  best.h = Math.floor(best.w / ASPECT);
  return best;
}

/**
 * perPage is the most tiles (up to n) one page of area holds legibly.
 * @param {number} n
 * @param {number} width
 * @param {number} height
 * @param {(k: number) => number} widthOf tile width for k tiles
 */
function perPage(n, width, height, widthOf) {
  let k = Math.min(n, maxPerPage(width, height));
  while (k > 1 && widthOf(k) < MIN_TILE_WIDTH) k--;
  return Math.max(1, k);
}

/**
 * placeRows lays keys out as rows of cols tiles of w x h, centred in area;
 * the last row is centred on its own.
 * @param {string[]} keys
 * @param {Rect} area
 * @param {{cols: number, rows: number, w: number, h: number}} f
 * @param {Map<string, Rect>} out
 */
function placeRows(keys, area, f, out) {
  const rows = Math.ceil(keys.length / f.cols);
  const top = area.y + Math.floor((area.h - (rows * f.h + (rows - 1) * GAP)) / 2);
  for (let r = 0; r < rows; r++) {
    const row = keys.slice(r * f.cols, (r + 1) * f.cols);
    const left = area.x + Math.floor((area.w - (row.length * f.w + (row.length - 1) * GAP)) / 2);
    row.forEach((k, i) => out.set(k, { x: left + i * (f.w + GAP), y: top + r * (f.h + GAP), w: f.w, h: f.h }));
  }
}

/**
 * gridPlan: every tile of keys on a page of rect, page by page.
 * @param {string[]} keys
 * @param {Rect} rect
 * @param {number} page
 * @returns {Plan}
 */
function gridPlan(keys, rect, page) {
  const n = keys.length;
  let area = rect;
  let per = n;
  if (n > maxPerPage(rect.w, rect.h) || fit(n, rect.w, rect.h).w < MIN_TILE_WIDTH) {
    area = { ...rect, h: rect.h - PAGER_HEIGHT };
    per = perPage(n, area.w, area.h, (k) => fit(k, area.w, area.h).w);
  }
  const pages = Math.max(1, Math.ceil(n / per));
  page = Math.min(Math.max(0, page), pages - 1);
  const onPage = keys.slice(page * per, (page + 1) * per);
  const tiles = new Map();
  placeRows(onPage, area, fit(onPage.length, area.w, area.h), tiles);
  const pager = pages > 1 ? { x: rect.x, y: rect.y + rect.h - PAGER_HEIGHT, w: rect.w, h: PAGER_HEIGHT } : null;
  return { tiles, main: null, page, pages, pager };
}

/**
 * speakerPlan: main large, the other keys in a one-row strip under it,
 * the strip paged.
 * @param {string[]} keys
 * @param {string} main
 * @param {Rect} rect
 * @param {number} page
 * @returns {Plan}
 */
function speakerPlan(keys, main, rect, page) {
  const rest = keys.filter((k) => k !== main);
  if (!rest.length) return { ...gridPlan([main], rect, 0), main };
  // The strip: 22 % of the height, 90 to 200 px, and never more than the
  // main tile gets; too short a stage for both shows the grid instead.
  const budget = Math.min(Math.max(90, Math.min(200, Math.round(rect.h * 0.22))), Math.floor((rect.h - PAGER_HEIGHT - GAP) / 2));
  if (budget < 50) return gridPlan(keys, rect, page);
  const widthOf = (/** @type {number} */ k) => Math.min(budget * ASPECT, (rect.w - (k - 1) * GAP) / k);
  const per = perPage(rest.length, rect.w, rect.h, widthOf);
  const pages = Math.ceil(rest.length / per);
  page = Math.min(Math.max(0, page), pages - 1);
  const pagerH = pages > 1 ? PAGER_HEIGHT : 0;
  const w = Math.floor(widthOf(per));
  const strip = { x: rect.x, y: 0, w: rect.w, h: Math.floor(w / ASPECT) };
  strip.y = rect.y + rect.h - pagerH - strip.h;
  const tiles = new Map();
  const mainArea = { x: rect.x, y: rect.y, w: rect.w, h: strip.y - GAP - rect.y };
  placeRows([main], mainArea, fit(1, mainArea.w, mainArea.h), tiles);
  const onPage = rest.slice(page * per, (page + 1) * per);
  placeRows(onPage, strip, { cols: per, rows: 1, w, h: strip.h }, tiles);
  const pager = pagerH ? { x: rect.x, y: rect.y + rect.h - pagerH, w: rect.w, h: pagerH } : null;
  return { tiles, main, page, pages, pager };
}

/**
 * plan places tiles (keys, in order) in a width x height stage. main is
 * the tile to show large (the speaker layout), or null for the grid.
 * Tiles not in the returned map are on another page.
 * @param {string[]} keys
 * @param {number} width
 * @param {number} height
 * @param {string|null} main
 * @param {number} page
 * @returns {Plan}
 */
export function plan(keys, width, height, main, page) {
  const rect = { x: GAP, y: GAP, w: Math.max(0, width - 2 * GAP), h: Math.max(0, height - 2 * GAP) };
  if (!keys.length) return { tiles: new Map(), main: null, page: 0, pages: 1, pager: null };
  if (main && keys.includes(main)) return speakerPlan(keys, main, rect, page);
  return gridPlan(keys, rect, page);
}

/**
 * Stage owns the layout state and applies plans to the tiles: on every
 * resize of the stage, tile added or removed, pin, active speaker change,
 * layout change and page turn. The user's layout (grid or speaker) is kept
 * across reloads in localStorage.
 */
export class Stage {
  /**
   * @param {HTMLElement} el the stage
   * @param {import('./tiles.js').Tiles} tiles
   * @param {{pager: HTMLElement, prev: HTMLButtonElement, next: HTMLButtonElement, page: HTMLElement}} pager
   */
  constructor(el, tiles, pager) {
    this.el = el;
    this.tiles = tiles;
    this.pager = pager;
    let saved = null;
    try { saved = localStorage.getItem('roundtable.layout'); } catch { /* storage off */ }
    /** @type {'grid'|'speaker'} */
    this.mode = saved === 'speaker' ? 'speaker' : 'grid';
    /** @type {string|null} the pinned tile's key */
    this.pinned = null;
    /** @type {string|null} the active speaker's participant id */
    this.speaker = null;
    /** @type {string|null} the tile shown large last time (kept while nobody speaks) */
    this.lastMain = null;
    this.page = 0;
    this.pages = 1;
    pager.prev.onclick = () => this.turn(-1);
    pager.next.onclick = () => this.turn(1);
    new ResizeObserver(() => this.layout()).observe(el);
  }

  /** @param {'grid'|'speaker'} mode */
  setMode(mode) {
    this.mode = mode;
    try { localStorage.setItem('roundtable.layout', mode); } catch { /* private mode */ }
    this.page = 0;
    this.layout();
  }

  /** @param {string} key the tile to pin, or to unpin when it is pinned */
  togglePin(key) {
    this.pinned = this.pinned === key ? null : key;
    this.page = 0;
    this.layout();
  }

  /** @param {string|null} participant */
  setSpeaker(participant) {
    this.speaker = participant;
    this.tiles.setSpeaker(participant);
    if (this.mode === 'speaker' && !this.pinned) this.layout();
  }

  /** dropGone forgets a pin whose tile went (its owner left, its share ended). */
  dropGone() {
    if (this.pinned && !this.tiles.tiles.has(this.pinned)) this.pinned = null;
  }

  /** @param {number} delta pages forward (or back) */
  turn(delta) {
    this.page = Math.min(Math.max(0, this.page + delta), this.pages - 1);
    this.layout();
  }

  /**
   * mainKey is the tile to show large, or null for the grid: the pinned
   * tile, else someone else's screen share, else (speaker layout) the
   * active speaker, the last one shown, or the first other participant.
   * @returns {string|null}
   */
  mainKey() {
    const all = this.tiles.tiles;
    if (this.pinned && all.has(this.pinned)) return this.pinned;
    const screens = [...all.values()].filter((t) => t.kind === 'screen' && !t.self);
    if (screens.length) return screens[screens.length - 1].key;
    if (this.mode !== 'speaker') return null;
    const speaking = all.get(`${this.speaker}:camera`);
    if (speaking && !speaking.self) return speaking.key;
    // Not the last main if it is the self tile: shown only for want of
    // another (alone in the room, or before the others' tiles arrived).
    const last = this.lastMain ? all.get(this.lastMain) : undefined;
    if (last && !last.self) return last.key;
    const other = [...all.values()].find((t) => !t.self);
    return other ? other.key : (all.keys().next().value ?? null);
  }

  /** layout places every tile for the stage's current size. */
  layout() {
    this.dropGone();
    const keys = [...this.tiles.tiles.keys()];
    const main = this.mainKey();
    const p = plan(keys, this.el.clientWidth, this.el.clientHeight, main, this.page);
    this.page = p.page;
    this.pages = p.pages;
    this.lastMain = p.main;
    for (const t of this.tiles.tiles.values()) {
      const r = p.tiles.get(t.key);
      t.el.hidden = !r;
      t.el.classList.toggle('main', t.key === p.main);
      t.pin.setAttribute('aria-pressed', String(t.key === this.pinned));
      if (r) Object.assign(t.el.style, { left: `${r.x}px`, top: `${r.y}px`, width: `${r.w}px`, height: `${r.h}px` });
    }
    this.showPager(p);
    this.el.dataset.layout = p.main ? 'speaker' : 'grid';
    this.tiles.setSpeaker(this.speaker); // tiles made since the last change
    this.tiles.hints();
  }

  /** @param {Plan} p */
  showPager(p) {
    const { pager, prev, next, page } = this.pager;
    pager.hidden = !p.pager;
    if (!p.pager) return;
    Object.assign(pager.style, { left: `${p.pager.x}px`, top: `${p.pager.y}px`, width: `${p.pager.w}px`, height: `${p.pager.h}px` });
    page.textContent = `Page ${p.page + 1} of ${p.pages}`;
    const focused = document.activeElement;
    prev.disabled = p.page === 0;
    next.disabled = p.page === p.pages - 1;
    // A button that just went disabled would drop the focus to the page.
    if (focused === prev && prev.disabled) next.focus();
    if (focused === next && next.disabled) prev.focus();
  }
}
