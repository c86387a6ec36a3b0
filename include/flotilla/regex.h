/*
 * Regular expressions from clients (job constraints, inventory queries):
 * POSIX extended, checked before glibc compiles them.
 */
#ifndef FLOTILLA_REGEX_H
#define FLOTILLA_REGEX_H

/*
 * Why re must not be compiled, or NULL. glibc compiles a counted
 * repetition, and '+', by copying its operand, so nested ones multiply:
 * "((a{255}){255}){255}" or "a++++++++++++++++++++++++" takes seconds and
 * gigabytes, and copies of a part that can match nothing make its closure
 * computation cubic ("((a|b|)*){999}": seconds). The expanded size is
 * estimated and bounded (500 atoms, about 0.2 s of regcomp at worst), as
 * are the length (1,024 bytes) and the nesting of groups (32). A
 * repetition of a repetition ("a**", undefined in POSIX) and
 * back-references (exponential to match) are refused.
 */
const char *flt_regex_problem(const char *re);

#endif
