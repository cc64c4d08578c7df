// shapes.cpp: twelve C++ bugs, one per first argument (see BUGS in bench/bucket_matrix.py); the
// second argument, 0 or 1, changes the data but not the bug. Ordinary C++: templates, lambdas,
// the standard containers, a thread, exceptions nobody catches.
#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

volatile long sink;
static long input;

namespace shapes {

struct Parser {
    std::string text;
    int read_header() {
        if (text.size() < 8 + static_cast<size_t>(input)) throw std::runtime_error("truncated header: " + text);
        return text[0];
    }
};

struct Table {
    std::vector<std::vector<double>> rows;
    double cell(size_t r, size_t c) const { return rows.at(r).at(c); }
};

template <typename K> struct Registry {
    std::map<K, int> ids;
    int find(const K &key) const { return ids.at(key); }
};

struct Node {
    long v = 0;
    Node *next = nullptr;
    long value() const { return v; }
};

Node *volatile spare_nodes[2];  // none allocated

struct Tree {
    Node *root = nullptr;
    long sum() const { return root->value() + (root->next ? root->next->value() : 0); }
};

struct Buffer {
    char *data = new char[64];
    ~Buffer() { delete[] data; }
};

struct Pool {
    void recycle(Buffer *b) {
        delete b;
        delete b;
    }
    void work(std::vector<long *> &slots) {
        std::thread t([&slots] {
            for (long *slot : slots) *slot += 1;
        });
        t.join();
    }
};

struct Config {
    std::optional<int> port_number;
    int port() const { return port_number.value(); }
};

struct Session {
    void close() noexcept {
        if (sink >= 0) throw std::logic_error("session closed twice");
    }
};

struct Player {
    long score;
};

void rank_players(std::vector<Player *> &players) {
    std::sort(players.begin(), players.end(), [](const Player *a, const Player *b) { return a->score > b->score; });
}

template <typename T> struct Matrix {
    size_t rows, cols;
    std::vector<T> cells;
    T get(size_t r, size_t c) const {
        assert(r < rows && c < cols);
        return cells[r * cols + c];
    }
};

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
};

double total_area(const std::vector<Shape *> &all) {
    double t = 0;
    for (const Shape *s : all) t += s->area();
    return t;
}

std::string make_label(const char *name) { return std::string(name); }

}  // namespace shapes

int main(int argc, char **argv) {
    using namespace shapes;
    std::string bug = argc > 1 ? argv[1] : "";
    input = argc > 2 ? std::atol(argv[2]) : 0;
    if (bug == "throw") sink = Parser{"abc"}.read_header();
    else if (bug == "vector-at") sink = static_cast<long>(Table{{{1.0, 2.0}}}.cell(1 + input, 0));
    else if (bug == "map-at") sink = Registry<std::string>{{{"a", 1}}}.find(input ? "zz" : "b");
    else if (bug == "null-this") {
        Tree t{input ? spare_nodes[1] : spare_nodes[0]};
        sink = t.sum();
    } else if (bug == "double-delete") Pool{}.recycle(new Buffer);
    else if (bug == "optional") sink = Config{}.port();
    else if (bug == "noexcept") Session{}.close();
    else if (bug == "lambda-sort") {
        std::vector<Player> ps(40, Player{1});
        std::vector<Player *> refs;
        for (auto &p : ps) refs.push_back(&p);
        refs[17 + input] = nullptr;
        rank_players(refs);
    } else if (bug == "thread") {
        long ok = 0;
        std::vector<long *> slots{&ok, reinterpret_cast<long *>(input * 64)};
        Pool{}.work(slots);
    } else if (bug == "template-assert") {
        Matrix<double> m{2, 2, {1, 2, 3, 4}};
        sink = static_cast<long>(m.get(2 + input, 0));
    } else if (bug == "virtual-null") {
        std::vector<Shape *> all(3 + input, nullptr);
        sink = static_cast<long>(total_area(all));
    } else if (bug == "string-null") sink = static_cast<long>(make_label(input > 5 ? "x" : nullptr).size());
    else return 2;
    return 0;
}
