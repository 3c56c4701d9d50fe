#include <stdio.h>
int main(void) { fprintf(stderr, "minienc: error: not built yet\n"); return 1; }
