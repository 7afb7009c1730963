// Sites named by their callers (tests/tests/site_names.rs): every block is
// made through operator new, std::vector or std::string, and each site
// must be named after the function below that asked for it.
#include <cstdio>
#include <string>
#include <vector>

struct Row {
    std::string name;
    std::vector<int> cells;
};

static std::vector<Row> load_rows(int n) {
    std::vector<Row> rows;
    for (int i = 0; i < n; i++) {
        Row r;
        r.name = "row-number-" + std::to_string(i) + "-with-a-name-too-long-for-sso";
        for (int j = 0; j < 50; j++) r.cells.push_back(i * j); // CELLS
        rows.push_back(std::move(r)); // ROWS
    }
    return rows;
}

static int *make_table(int n) {
    return new int[n]; // TABLE
}

int main() {
    std::vector<Row> rows = load_rows(2000);
    int *t = make_table(100000);
    t[0] = (int)rows.size();
    std::printf("%d\n", t[0]);
    delete[] t;
    return 0;
}
