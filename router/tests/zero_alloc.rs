//! Proves that `find` and `expand` (into a pre-reserved buffer) allocate
//! nothing, with a global allocator that counts this thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ringway_router::{Lookup, RouteSpec, Router, UriTemplate};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

#[test]
fn find_and_expand_allocate_nothing() {
    let mut routes = vec![
        RouteSpec::new("/", &["GET"]),
        RouteSpec::new("/users/{id}", &["GET", "PUT", "DELETE"]),
        RouteSpec::new("/users/{id}/orders/{order}", &["GET"]),
        RouteSpec::new("/files/{path+}", &["GET"]),
        RouteSpec::new("/{proxy+}", &["ANY"]),
        RouteSpec::new("/x", &["GET"]).with_host("*.example.com"),
    ];
    for i in 0..100 {
        routes.push(RouteSpec::new(
            &format!("/svc{i}/items/{{id}}"),
            &["GET", "POST"],
        ));
    }
    let router = Router::compile(&routes, Some("/prod")).unwrap();
    let uri = UriTemplate::parse(
        "http://app/v2/users/{id}/orders/{order}?src=gw",
        &["id", "order"],
    )
    .unwrap();
    let proxy = UriTemplate::parse("http://app/api/{proxy}", &["proxy"]).unwrap();
    let mut out = Vec::with_capacity(1024);

    let path = b"/prod/users/42/orders/caf%C3%A9";
    let (n, lookup) = allocations_during(|| router.find(b"GET", Some(b"api.other.com:8443"), path));
    assert_eq!(n, 0, "find allocated");
    let Lookup::Found(m) = lookup else {
        panic!("{lookup:?}")
    };
    let (n, r) = allocations_during(|| uri.expand(path, &m, &router, b"page=2&sort=asc", &mut out));
    assert_eq!(n, 0, "expand allocated");
    r.unwrap();
    assert_eq!(out, b"/v2/users/42/orders/caf%C3%A9?src=gw&page=2&sort=asc");

    out.clear();
    let path = b"/prod/a/b%20c/d.txt";
    let (n, lookup) = allocations_during(|| router.find(b"PATCH", None, path));
    assert_eq!(n, 0, "find allocated");
    let Lookup::Found(m) = lookup else {
        panic!("{lookup:?}")
    };
    let (n, r) = allocations_during(|| proxy.expand(path, &m, &router, b"", &mut out));
    assert_eq!(n, 0, "expand allocated");
    r.unwrap();

    let (n, lookup) = allocations_during(|| router.find(b"POST", None, b"/prod/users/1"));
    assert_eq!(n, 0, "find (405) allocated");
    assert_eq!(
        lookup,
        Lookup::MethodNotAllowed {
            allow: "GET, PUT, DELETE"
        }
    );
    let (n, _) = allocations_during(|| router.find(b"GET", None, b"/dev/x"));
    assert_eq!(n, 0, "find (404) allocated");

    // Sanity: the counter does count.
    let (n, v) = allocations_during(|| vec![1u8; 16]);
    assert!(n > 0 && v.len() == 16);
}
