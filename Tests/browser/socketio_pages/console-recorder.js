// Loaded before a page's own script, which it does not change: keeps a copy of every
// console.log call's arguments in window.__consoleLog (deep-copied, so later changes to an
// object do not rewrite what was logged), then logs as before.
window.__consoleLog = [];
(function () {
  const original = console.log;
  console.log = function (...args) {
    let copy;
    try { copy = structuredClone(args); } catch (e) { copy = args.map(String); }
    window.__consoleLog.push(copy);
    return original.apply(this, args);
  };
})();
