// A virtualized list: only the rows in (or near) the viewport exist in the DOM, so 100,000
// experiments or thousands of columns scroll like ten.

export class VirtualList {
  private count = 0;
  private readonly live = new Map<number, HTMLElement>();
  private frame = 0;
  onRange: (first: number, last: number) => void = () => {};

  constructor(
    private readonly scroller: HTMLElement,
    private readonly body: HTMLElement,
    private readonly rowHeight: number,
    private readonly renderRow: (index: number) => HTMLElement,
    private readonly overscan = 10,
  ) {
    body.style.position = "relative";
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    window.addEventListener("resize", this.resized);
  }

  private readonly resized = (): void => this.schedule();

  destroy(): void {
    window.removeEventListener("resize", this.resized);
    cancelAnimationFrame(this.frame);
  }

  setCount(count: number): void {
    this.count = count;
    this.body.style.height = `${count * this.rowHeight}px`;
    this.refresh();
  }

  /** Re-render every live row (data arrived, columns changed). */
  refresh(): void {
    for (const el of this.live.values()) el.remove();
    this.live.clear();
    this.update();
  }

  /** Re-render only these rows if they are live (a page of data arrived). */
  refreshRange(first: number, last: number): void {
    for (let index = first; index <= last; index++) {
      const old = this.live.get(index);
      if (!old) continue;
      const fresh = this.place(index);
      old.replaceWith(fresh);
      this.live.set(index, fresh);
    }
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.update();
    });
  }

  private place(index: number): HTMLElement {
    const el = this.renderRow(index);
    el.style.position = "absolute";
    el.style.top = `${index * this.rowHeight}px`;
    el.style.height = `${this.rowHeight}px`;
    return el;
  }

  private update(): void {
    const top = Math.max(0, this.scroller.scrollTop - this.body.offsetTop);
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - this.overscan);
    const last = Math.min(this.count - 1, Math.ceil((top + height) / this.rowHeight) + this.overscan);
    for (const [index, el] of this.live) {
      if (index < first || index > last) {
        el.remove();
        this.live.delete(index);
      }
    }
    const fragment = document.createDocumentFragment();
    for (let index = first; index <= last; index++) {
      if (this.live.has(index)) continue;
      const el = this.place(index);
      this.live.set(index, el);
      fragment.appendChild(el);
    }
    this.body.appendChild(fragment);
    if (this.count > 0) this.onRange(first, last);
  }
}
