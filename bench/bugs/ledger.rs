// ledger.rs: twelve Rust bugs, one per first argument (see BUGS in bench/bucket_matrix.py); the
// second argument, 0 or 1, changes the data but not the bug. Built with panic=abort, so that a
// panic leaves a core, as a service built that way does.
use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;

struct Account {
    id: u32,
    balance: i64,
    count: i64,
}

fn find_account(accounts: &[Account], id: u32) -> &Account {
    accounts.iter().find(|a| a.id == id).unwrap()
}

fn parse_amount(text: &str) -> i64 {
    text.parse::<i64>().expect("an amount")
}

fn slot_at(slots: &[i64], i: usize) -> i64 {
    slots[i]
}

fn check_balance(a: &Account) {
    if a.balance < 0 {
        panic!("balance of {} is negative: {}", a.id, a.balance);
    }
}

fn average(total: i64, n: i64) -> i64 {
    total / n
}

struct Ledger {
    entries: RefCell<Vec<i64>>,
}

impl Ledger {
    fn update(&self, v: i64) {
        let mut first = self.entries.borrow_mut();
        let mut second = self.entries.borrow_mut();
        first.push(v);
        second.push(v);
    }
}

fn audit_worker(accounts: Vec<Account>, id: u32) -> i64 {
    let audited = accounts.into_iter().filter(|a| a.id == id).last();
    audited.expect("an audited account").balance
}

fn poke(p: *mut i64) {
    unsafe { std::ptr::write_volatile(p, 1) }
}

fn rate_of(rates: &HashMap<String, f64>, currency: &str) -> f64 {
    rates[currency]
}

fn walk_tree(depth: u64) -> u64 {
    let frame = black_box([depth; 64]);
    walk_tree(black_box(depth + 1)) + frame[(depth % 64) as usize]
}

fn decode_name(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn summarize(accounts: &[Account]) -> Vec<i64> {
    accounts.iter().map(|a| a.balance / a.count).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bug = args.get(1).map(String::as_str).unwrap_or("");
    let input: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let accounts = vec![Account { id: 1, balance: 10, count: 1 }, Account { id: 2, balance: -5 - input, count: 0 }];
    match bug {
        "unwrap-none" => println!("{}", find_account(&accounts, black_box(9 + input as u32)).balance),
        "expect-err" => println!("{}", parse_amount(if input == 0 { "12x" } else { "" })),
        "index" => println!("{}", slot_at(&[1, 2, 3], black_box(3 + input as usize))),
        "panic" => check_balance(&accounts[1]),
        "divide" => println!("{}", average(black_box(100 + input), black_box(input - input))),
        "refcell" => Ledger { entries: RefCell::new(vec![]) }.update(input),
        "thread" => {
            let t = std::thread::spawn(move || audit_worker(accounts, 7 + input as u32));
            println!("{}", t.join().unwrap());
        }
        "null" => poke(black_box((input * 64) as *mut i64)),
        "hashmap" => {
            let mut rates = HashMap::new();
            rates.insert("USD".to_string(), 1.0);
            println!("{}", rate_of(&rates, if input == 0 { "EUR" } else { "GBP" }));
        }
        "recursion" => println!("{}", walk_tree(black_box(input as u64))),
        "utf8" => println!("{}", decode_name(vec![0x66, 0xff - input as u8, 0x80])),
        "closure" => println!("{:?}", summarize(&accounts)),
        _ => std::process::exit(2),
    }
}
