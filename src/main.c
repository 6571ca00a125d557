/* Placeholder until the composition root lands (issue 2). */
#include <stdio.h>
int main(void)
{
	fprintf(stderr, "anycached: not built yet\n");
	return 1;
}
