// Event handlers are attached with addEventListener through refs, not as `onClick`/`onSubmit`
// props: React keeps every host element's props on the DOM node itself (`__reactProps$…`), where
// any script of the page can reach them, and a handler is a function that calls the client. A
// listener added with addEventListener is reachable by no script. (A callback ref would be a
// function among the props too, hence a ref object and an effect.)

import { useEffect, useRef } from "react";
import type { RefObject } from "react";

export function useListener<E extends HTMLElement, K extends keyof HTMLElementEventMap>(
  type: K,
  handler: (event: HTMLElementEventMap[K], element: E) => void,
): RefObject<E | null> {
  const ref = useRef<E>(null);
  const latest = useRef(handler);
  latest.current = handler;
  const attached = useRef<{ element: E; listener: (event: HTMLElementEventMap[K]) => void } | null>(null);

  // After every render: the element behind the ref may have appeared, changed or gone.
  useEffect(() => {
    const element = ref.current;
    if (attached.current?.element === element) return;
    if (attached.current) attached.current.element.removeEventListener(type, attached.current.listener);
    attached.current = null;
    if (!element) return;
    const listener = (event: HTMLElementEventMap[K]): void => latest.current(event, element);
    element.addEventListener(type, listener);
    attached.current = { element, listener };
  });
  // On unmount.
  useEffect(
    () => () => {
      if (attached.current) attached.current.element.removeEventListener(type, attached.current.listener);
      attached.current = null;
    },
    [type],
  );
  return ref;
}
